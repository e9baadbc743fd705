//! A scripted stand-in for the Anthropic Messages API, for `borg demo` and the tests: the
//! real `claude` CLI, pointed at it with `ANTHROPIC_BASE_URL`, runs its real tools while the
//! "model" follows a script instead of thinking. It listens on 127.0.0.1 only.
//!
//! - `server`: [`ScriptedModel`], the HTTP/1.1 server (keep-alive, chunked bodies) with its
//!   request log; stops when dropped.
//! - `script`: [`Script`], the serializable rules for prompts borg writes itself (matched on
//!   substrings, tool calls with `{cwd}`/`{spec_file}` placeholders, a final answer).
//! - `turn`: the next turn for a request: the first matching rule, else the prompt-embedded
//!   syntax (`DO:`, `SAY:`, `FAIL:`, `STALL`) the tests use.
//! - `request`: what the model reads from a request; `wire`: the streaming SSE protocol and
//!   error bodies; `http1`: the hand-written HTTP framing.

mod http1;
mod request;
mod script;
mod server;
mod turn;
mod wire;

pub use request::{PHASE_LINE, SPEC_FILE_LINE};
#[cfg(test)]
pub(crate) use script::Placeholders;
pub use script::{Rule, Script, ScriptError, ToolCall};
pub use server::{Logged, ScriptedModel};
