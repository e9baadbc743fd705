//! The stream-json protocol that `claude --print --output-format stream-json --verbose` writes on
//! stdout, one JSON object per line, as Rust types.
//!
//! Only what borg acts on is modelled; everything else is ignored, because the CLI adds fields
//! and event kinds in minor releases (2.1.328 prints ~60 keys on `system/init` alone). The
//! rules, all exercised by `tests/claude_fixtures.rs`:
//!
//! - an unknown `type` (or `system` `subtype`, or content block `type`) parses as `Unknown`/
//!   `Other` instead of failing the line;
//! - unknown fields are ignored (serde's default);
//! - an optional field whose value has an unexpected JSON type reads as absent
//!   ([`lenient`]), so one odd field cannot cost us a whole `result` event;
//! - a line that is not JSON at all is the caller's to count and skip ([`parse_line`] returns
//!   the error; [`super::accumulator`] counts it).
//!
//! The shapes were read off real output in `tests/fixtures/claude-code-2.1.328`.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

/// One line of stdout.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    System(System),
    Assistant(Assistant),
    /// Tool results travel back to the model as `user` messages.
    User(User),
    Result(ResultEvent),
    /// Any event kind this version of borg does not know (e.g. `stream_event`, `rate_limit`).
    #[serde(other)]
    Unknown,
}

/// `type: "system"` events, told apart by `subtype`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum System {
    /// First line of every run, also of a resumed one (same `session_id` then).
    Init(Init),
    /// The model API failed and the CLI will retry after `retry_delay_ms`. Without
    /// `CLAUDE_CODE_MAX_RETRIES` the CLI retries up to 10 times over about a minute, printing
    /// nothing else meanwhile: idle timeouts must count these lines as activity.
    ApiRetry(ApiRetry),
    /// A tool call was refused (not in `--allowedTools`, or needs a prompt that `--print`
    /// cannot show). The run goes on; the model sees an `is_error` tool result.
    PermissionDenied(PermissionDenied),
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Init {
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub cwd: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    #[serde(default, rename = "permissionMode", deserialize_with = "lenient")]
    pub permission_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub claude_code_version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiRetry {
    #[serde(default, deserialize_with = "lenient")]
    pub attempt: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    pub max_retries: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    pub retry_delay_ms: Option<u64>,
    /// HTTP status of the failed call (500, 429, ...).
    #[serde(default, deserialize_with = "lenient")]
    pub error_status: Option<u16>,
    /// The CLI's short class of the failure (`server_error`, `rate_limit`, ...).
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PermissionDenied {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_use_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Assistant {
    #[serde(default)]
    pub message: Message,
    /// Set on the synthetic message the CLI prints when the API failed for good; its text is
    /// an error report, not something the agent said.
    #[serde(default, deserialize_with = "lenient")]
    pub is_api_error_message: Option<bool>,
    /// Set on messages of a sub-agent (the Task tool); `None` for the main conversation.
    #[serde(default, deserialize_with = "lenient")]
    pub parent_tool_use_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct User {
    #[serde(default)]
    pub message: Message,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    /// The Messages API allows a bare string here as well as a list of blocks.
    #[serde(default, deserialize_with = "blocks")]
    pub content: Vec<Block>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        #[serde(default)]
        tool_use_id: String,
        /// A string, or a list of content blocks (text, image): see [`Block::result_text`].
        #[serde(default)]
        content: Value,
        #[serde(default, deserialize_with = "lenient")]
        is_error: Option<bool>,
    },
    /// `thinking`, `image`, `server_tool_use` and whatever comes next.
    #[serde(other)]
    Other,
}

impl Block {
    /// The text of a `tool_result`'s content, whichever of its two shapes it has.
    pub fn result_text(content: &Value) -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

/// The last line of a run that got as far as reporting. `subtype` is not the verdict: a run
/// that failed on the API says `subtype: "success"` with `is_error: true` (fixture 06).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultEvent {
    #[serde(default, deserialize_with = "lenient")]
    pub subtype: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_error: Option<bool>,
    /// The final answer; absent on `error_max_turns`.
    #[serde(default, deserialize_with = "lenient")]
    pub result: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub total_cost_usd: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub num_turns: Option<u32>,
    /// `completed`, `max_turns`, `api_error`, ...
    #[serde(default, deserialize_with = "lenient")]
    pub terminal_reason: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub api_error_status: Option<u16>,
    /// The API's error type (`api_error`, `rate_limit_error`, `overloaded_error`, ...).
    #[serde(default, deserialize_with = "lenient")]
    pub api_error_type: Option<String>,
    /// Human-readable reasons on error subtypes ("Reached maximum number of turns (2)").
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    pub permission_denials: Option<Vec<ResultDenial>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultDenial {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_use_id: Option<String>,
}

/// Parses one stdout line. Errors are for the caller to count: they mean "not an event".
pub fn parse_line(line: &str) -> Result<Event, serde_json::Error> {
    serde_json::from_str(line)
}

/// Reads an optional field, turning a value of the wrong JSON type into `None` instead of an
/// error for the whole event.
fn lenient<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Option::<Value>::deserialize(de)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// Reads `message.content`: a bare string becomes one text block, and a block that does not
/// parse becomes [`Block::Other`] rather than failing its neighbours.
fn blocks<'de, D>(de: D) -> Result<Vec<Block>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<Value>::deserialize(de)? {
        Some(Value::String(text)) => vec![Block::Text { text }],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap_or(Block::Other))
            .collect(),
        _ => Vec::new(),
    })
}
