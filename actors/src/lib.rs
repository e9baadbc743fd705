//! borg's domain actors — chat groups, repositories, tasks, agent runs, release trains — and
//! the ports (traits such as [`agent::AgentRunner`]) through which they reach the world. No I/O
//! library type appears here: the daemon (`src/`) provides the real adapters and tests provide
//! fakes.

pub mod abort;
pub mod agent;
pub mod chat;
pub mod failpoint;
pub mod metrics;
pub mod pipeline;
pub mod slots;

pub use supervisors;
