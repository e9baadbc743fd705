//! borg's domain actors — chat groups, repositories, tasks, agent runs, release trains — and
//! the ports (traits such as `ChatTransport`, `AgentRunner`, `Vcs`, `Clock`) through which they
//! reach the world. No I/O library type appears here: the daemon (`src/`) provides the real
//! adapters and tests provide fakes.
//!
//! The crate is empty until the chat and pipeline features land; it exists now so that the
//! dependency direction `borg` → `actors` → `supervisors` is fixed from the start.

pub use supervisors;
