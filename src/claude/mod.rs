//! The adapter to Claude Code, the `claude` CLI: the [`actors::agent::AgentRunner`] port
//! implemented by running the real CLI as a subprocess and reading its stream-json output.
//!
//! - [`stream`]: the stream-json protocol as Rust types, tolerant of what it does not know;
//! - [`accumulator`]: lines in, progress events and one [`actors::agent::AgentOutcome`] out
//!   (including the typed classification of failures);
//! - [`summary`]: one-line tool-call descriptions for progress messages;
//! - [`env`]: the allow-list of environment variables a run gets;
//! - [`process`]: bounded stdout/stderr readers and the process-group killer;
//! - [`settings`]: [`ClaudeConfig`], how borg starts the CLI;
//! - [`watch`]: one run's stdout into progress and an outcome, with the idle and hard
//!   timeouts, wherever the run happens (a subprocess here, a container in `crate::docker`);
//! - [`runner`]: [`ClaudeRunner`], which puts them together.
//!
//! The recorded output of the real CLI in `tests/fixtures/claude-code-2.1.328` is the
//! contract: `tests/claude_fixtures.rs` parses all of it, and `tests/claude_cli.rs` runs the
//! real CLI against a scripted stand-in for the Anthropic API.

pub mod accumulator;
pub mod env;
pub mod settings;
pub mod stream;
pub mod summary;

pub use accumulator::{Notes, StreamAccumulator, ToolNote};
pub use settings::ClaudeConfig;

// Running processes needs `nix`: only the daemon does it (the fuzz targets parse).
daemon! {
    pub mod process;
    pub mod runner;
    pub mod watch;

    pub use runner::{ClaudeRunner, claude_args};
}
