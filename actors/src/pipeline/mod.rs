//! The engineering pipeline: repositories, tasks and their phases.

pub mod ports;
