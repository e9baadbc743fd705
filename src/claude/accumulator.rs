//! Turns the lines of one claude run into progress events while it runs and into one
//! [`AgentOutcome`] when it ends. Pure: no I/O, so the recorded fixtures test it exactly as
//! the runner uses it.
//!
//! How a run is judged (DESIGN.md, "External protocols"):
//!
//! - it failed if the exit code is not 0 **or** `result.is_error` is true, whatever `subtype`
//!   says (an API failure reports `subtype: "success"`, fixture 06);
//! - a failure is classified from structured fields only, never from message text:
//!   `subtype: error_max_turns` (or `terminal_reason: max_turns`) → [`AgentError::MaxTurns`];
//!   `terminal_reason: api_error` → [`AgentError::Api`] with `api_error_status`/`_type`;
//!   any other reported error → [`AgentError::Reported`]; a non-zero exit after a successful
//!   `result`, or with no `result` at all → [`AgentError::Exit`]; exit 0 without a `result`
//!   → [`AgentError::Protocol`];
//! - refused tool calls and failing tools (a Bash command that exits 3) are the agent's
//!   business: they are kept in [`Notes`] and logged, and do not fail the run.

use std::collections::HashMap;

use actors::agent::{AgentError, AgentOutcome, AgentProgress};

use super::stream::{Block, Event, ResultEvent, System, parse_line};
use super::summary::{tool_summary, truncate};

/// How many refused or failed tool calls [`Notes`] keeps; the counts go on past it.
const MAX_NOTED: usize = 50;
/// Longest tool-failure message kept in [`Notes`], in characters.
const MAX_NOTE_CHARS: usize = 300;

/// What a run did that does not decide its outcome but is worth telling a user or a log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notes {
    /// Lines that were not stream-json events (not JSON, not an object, a known event with a
    /// broken shape, or longer than the runner accepts).
    pub skipped_lines: u32,
    /// Tool calls the CLI refused (`system/permission_denied`, `result.permission_denials`).
    pub permission_denials: Vec<ToolNote>,
    /// Tool results with `is_error: true` (a failing command, a refused call, a bad edit).
    pub failed_tools: Vec<ToolNote>,
    pub failed_tool_count: u32,
    /// `system/api_retry` events seen.
    pub api_retries: u32,
}

/// A tool call that was refused or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolNote {
    pub tool: String,
    pub tool_use_id: String,
    pub message: String,
}

/// Consumes one run's stdout, line by line.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    session_id: Option<String>,
    /// From `system/init`: makes tool summaries relative to the working directory.
    cwd: Option<String>,
    /// Main-conversation assistant text, the fallback answer when `result.result` is empty.
    assistant_text: Vec<String>,
    /// Tool names by `tool_use` id, to name the tool a failing `tool_result` belongs to.
    tool_names: HashMap<String, String>,
    result: Option<ResultEvent>,
    notes: Notes,
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session id seen last, if any: worth keeping even when the run is cut short.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn notes(&self) -> &Notes {
        &self.notes
    }

    /// Feeds one stdout line (without its newline) and returns what it shows, in order.
    pub fn push_line(&mut self, line: &str) -> Vec<AgentProgress> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        match parse_line(line) {
            Ok(event) => self.push_event(event),
            Err(err) => {
                self.notes.skipped_lines += 1;
                tracing::warn!(
                    %err,
                    line = %truncate(line, 200),
                    skipped = self.notes.skipped_lines,
                    "claude printed a line that is not a stream-json event; skipped"
                );
                Vec::new()
            }
        }
    }

    /// Records a line the runner dropped unread because it was longer than its limit.
    pub fn skip_oversized(&mut self, bytes: usize) {
        self.notes.skipped_lines += 1;
        tracing::warn!(bytes, "claude printed an oversized line; skipped");
    }

    fn push_event(&mut self, event: Event) -> Vec<AgentProgress> {
        let mut progress = Vec::new();
        match event {
            Event::System(System::Init(init)) => {
                self.cwd = init.cwd;
                if let Some(id) = init.session_id {
                    self.session_id = Some(id.clone());
                    progress.push(AgentProgress::Started { session_id: id });
                }
            }
            Event::System(System::ApiRetry(retry)) => {
                self.notes.api_retries += 1;
                let error = match (retry.error_status, retry.error) {
                    (Some(status), Some(kind)) => format!("{status} {kind}"),
                    (Some(status), None) => status.to_string(),
                    (None, Some(kind)) => kind,
                    (None, None) => "unknown error".to_owned(),
                };
                progress.push(AgentProgress::Retrying {
                    attempt: retry.attempt.unwrap_or(self.notes.api_retries),
                    error,
                });
            }
            Event::System(System::PermissionDenied(denied)) => self.note_denial(
                denied.tool_name.unwrap_or_default(),
                denied.tool_use_id.unwrap_or_default(),
                denied.message.unwrap_or_default(),
            ),
            Event::System(System::Other) | Event::Unknown => {}
            Event::Assistant(msg) => {
                // The synthetic message of a failed API call repeats the error that the
                // `result` carries; it is not the agent speaking.
                let synthetic = msg.is_api_error_message == Some(true);
                let main = msg.parent_tool_use_id.is_none();
                for block in msg.message.content {
                    match block {
                        // A sub-agent's (Task tool) thoughts are its parent's business.
                        Block::Text { text } if main && !synthetic && !text.trim().is_empty() => {
                            self.assistant_text.push(text.clone());
                            progress.push(AgentProgress::Text(text));
                        }
                        Block::ToolUse { id, name, input } => {
                            let summary = tool_summary(&name, &input, self.cwd.as_deref());
                            self.tool_names.insert(id, name.clone());
                            progress.push(AgentProgress::ToolUse { name, summary });
                        }
                        _ => {}
                    }
                }
            }
            Event::User(msg) => {
                for block in msg.message.content {
                    if let Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error: Some(true),
                    } = block
                    {
                        self.note_tool_failure(tool_use_id, &Block::result_text(&content));
                    }
                }
            }
            Event::Result(result) => {
                if let Some(id) = &result.session_id {
                    self.session_id = Some(id.clone());
                }
                for denial in result.permission_denials.iter().flatten() {
                    self.note_denial(
                        denial.tool_name.clone().unwrap_or_default(),
                        denial.tool_use_id.clone().unwrap_or_default(),
                        String::new(),
                    );
                }
                self.result = Some(result);
            }
        }
        progress
    }

    fn note_denial(&mut self, tool: String, tool_use_id: String, message: String) {
        let denials = &mut self.notes.permission_denials;
        // The same denial shows up as an event and again in `result.permission_denials`.
        if !tool_use_id.is_empty() && denials.iter().any(|d| d.tool_use_id == tool_use_id) {
            return;
        }
        tracing::info!(%tool, %message, "claude was refused a tool call");
        if denials.len() < MAX_NOTED {
            denials.push(ToolNote {
                tool,
                tool_use_id,
                message: truncate(&message, MAX_NOTE_CHARS),
            });
        }
    }

    fn note_tool_failure(&mut self, tool_use_id: String, message: &str) {
        self.notes.failed_tool_count += 1;
        if self.notes.failed_tools.len() < MAX_NOTED {
            let tool = self
                .tool_names
                .get(&tool_use_id)
                .cloned()
                .unwrap_or_default();
            self.notes.failed_tools.push(ToolNote {
                tool,
                tool_use_id,
                message: truncate(message, MAX_NOTE_CHARS),
            });
        }
    }

    /// The outcome of a run that ended by itself. `exit_code` is `None` when a signal ended
    /// it; `stderr_tail` is the end of what it wrote on stderr.
    pub fn finish(self, exit_code: Option<i32>, stderr_tail: &str) -> AgentOutcome {
        let error = classify(self.result.as_ref(), exit_code, stderr_tail);
        self.outcome(error)
    }

    /// The outcome of a run that borg stopped (timeouts): what was seen so far, with `error`.
    pub fn abort(self, error: AgentError) -> AgentOutcome {
        self.outcome(Some(error))
    }

    fn outcome(self, error: Option<AgentError>) -> AgentOutcome {
        let result = self.result.unwrap_or_default();
        let text = match result.result {
            Some(text) if !text.trim().is_empty() => text,
            _ => self.assistant_text.join("\n\n"),
        };
        AgentOutcome {
            session_id: self.session_id,
            text,
            cost_usd: result.total_cost_usd,
            num_turns: result.num_turns,
            error,
        }
    }
}

/// The verdict on a finished run; `None` means success.
fn classify(
    result: Option<&ResultEvent>,
    exit_code: Option<i32>,
    stderr_tail: &str,
) -> Option<AgentError> {
    let exited_ok = exit_code == Some(0);
    let Some(result) = result else {
        return Some(if exited_ok {
            AgentError::Protocol(format!(
                "claude exited 0 without a result event; stderr: {}",
                truncate(stderr_tail.trim(), 500)
            ))
        } else {
            AgentError::Exit {
                code: exit_code,
                stderr_tail: stderr_tail.to_owned(),
            }
        });
    };
    let reported = result.is_error == Some(true);
    if !reported {
        return (!exited_ok).then(|| AgentError::Exit {
            code: exit_code,
            stderr_tail: stderr_tail.to_owned(),
        });
    }
    let subtype = result.subtype.as_deref().unwrap_or("");
    let reason = result.terminal_reason.as_deref();
    let message = result
        .errors
        .as_ref()
        .filter(|e| !e.is_empty())
        .map(|e| e.join("; "))
        .or_else(|| result.result.clone().filter(|r| !r.trim().is_empty()))
        .unwrap_or_else(|| truncate(stderr_tail.trim(), 500));
    Some(
        if subtype == "error_max_turns" || reason == Some("max_turns") {
            AgentError::MaxTurns
        } else if reason == Some("api_error") || result.api_error_status.is_some() {
            AgentError::Api {
                status: result.api_error_status,
                kind: result.api_error_type.clone(),
                message,
            }
        } else {
            AgentError::Reported {
                subtype: subtype.to_owned(),
                terminal_reason: reason.map(str::to_owned),
                message,
            }
        },
    )
}
