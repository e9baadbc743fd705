//! The engineering pipeline: repositories, tasks and their phases.
//!
//! ```text
//! pipeline
//! ├── desk                 task ids, creation, lists (borg:pipeline)
//! └── repo:<name>          rest_for_one
//!     ├── tasks            dynamic: task:<id>, each a phase state machine
//!     ├── repo             the task list; starts unfinished tasks (borg:repo:<name>)
//!     ├── train            the release train: done branches → main (borg:repo:<name>:train)
//!     └── seeder           proposes tasks while the repository is idle (borg:repo:<name>:seeder)
//! ```

pub mod desk;
pub mod gate;
pub mod phase;
pub mod ports;
pub mod repo;
pub mod seed;
pub mod task;
pub mod train;
