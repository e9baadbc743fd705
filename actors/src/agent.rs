//! The `AgentRunner` port: how domain actors run one coding agent (a Claude Code session) and
//! learn what it did. The daemon implements it with the real `claude` CLI, as a subprocess or
//! inside a container; tests can implement it with anything that honours the contract.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// One agent run to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRequest {
    /// Who the run is for, for logs and container labels: `task-12`, `chat-tg_42`.
    pub owner: String,
    /// Given to the agent on stdin (never as an argument: prompts can exceed argv limits).
    pub prompt: String,
    pub model: String,
    /// Continue this session (`--resume`); it only works with the same `home` and `workdir`.
    pub resume: Option<String>,
    /// The agent's HOME: its transcripts and settings live here, one per chat group or task.
    pub home: PathBuf,
    /// The agent's working directory.
    pub workdir: PathBuf,
    /// `--allowedTools`; empty means the CLI's default set.
    pub allowed_tools: Vec<String>,
    /// `--append-system-prompt` (a persona).
    pub system_prompt: Option<String>,
    pub max_turns: Option<u32>,
    /// Killed when no stream event arrives for this long (API retries count as events).
    pub idle_timeout: Duration,
    /// Killed after this long, whatever it is doing.
    pub hard_timeout: Duration,
}

/// What a run reports while it works, for progress messages and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentProgress {
    /// The CLI started a session (from `system/init`).
    Started { session_id: String },
    /// The agent called a tool; `summary` is a short human description ("Write hello.txt").
    ToolUse { name: String, summary: String },
    /// The agent said something (assistant text).
    Text(String),
    /// The model API failed and the CLI will retry (`system/api_retry`).
    Retrying { attempt: u32, error: String },
}

/// A run that ended, successfully or not.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    /// The last session id seen (`system/init` or `result`): resume from it next time.
    pub session_id: Option<String>,
    /// The final answer: `result.result`, or the assistant's text when that is empty.
    pub text: String,
    pub cost_usd: Option<f64>,
    pub num_turns: Option<u32>,
    /// `None` when the run succeeded.
    pub error: Option<AgentError>,
}

/// Why a run failed, typed so callers decide by class, never by substring.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentError {
    /// The agent could not be started (binary missing, sandbox refused).
    Spawn(String),
    /// No event for `idle_timeout`; the whole process group was killed.
    IdleTimeout(Duration),
    /// `hard_timeout` elapsed; the whole process group was killed.
    HardTimeout(Duration),
    /// The run hit `--max-turns`.
    MaxTurns,
    /// The model API failed for good (`terminal_reason: api_error`).
    Api {
        status: Option<u16>,
        kind: Option<String>,
        message: String,
    },
    /// The CLI reported an error (`is_error: true`) of another kind.
    Reported {
        subtype: String,
        terminal_reason: Option<String>,
        message: String,
    },
    /// The process exited non-zero without a `result` explaining why.
    Exit {
        code: Option<i32>,
        stderr_tail: String,
    },
    /// The output was not the stream-json protocol (no `result` event at all).
    Protocol(String),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(why) => write!(f, "the agent could not start: {why}"),
            Self::IdleTimeout(d) => write!(
                f,
                "the agent went silent for {} s and was stopped",
                d.as_secs()
            ),
            Self::HardTimeout(d) => write!(
                f,
                "the agent ran past its {} s limit and was stopped",
                d.as_secs()
            ),
            Self::MaxTurns => write!(f, "the agent used up its turns before finishing"),
            Self::Api {
                status, message, ..
            } => match status {
                Some(s) => write!(f, "the model API failed ({s}): {message}"),
                None => write!(f, "the model API failed: {message}"),
            },
            Self::Reported { message, .. } => write!(f, "the agent reported an error: {message}"),
            Self::Exit { code, .. } => write!(f, "the agent exited with status {code:?}"),
            Self::Protocol(why) => write!(f, "the agent's output was not understood: {why}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// Receives progress while a run is in flight.
pub type ProgressSink = Box<dyn Fn(AgentProgress) + Send + Sync>;

/// Runs agents. Implementations must kill everything the run started when it times out or
/// when the returned future is dropped.
pub trait AgentRunner: Send + Sync + 'static {
    fn run(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>>;
}
