//! A scripted stand-in for the Anthropic Messages API on 127.0.0.1, so the real `claude` CLI
//! can be tested without a model. It speaks plain HTTP/1.1 (keep-alive; request bodies with
//! Content-Length or chunked) and answers `POST /v1/messages` (the CLI sends
//! `?beta=true` and `stream: true`) with the real streaming SSE protocol: `message_start`,
//! `content_block_start/_delta/_stop`, `message_delta`, `message_stop`.
//!
//! The model's behaviour is scripted by the prompt (the last user message that is not tool
//! results; `<system-reminder>` blocks the CLI adds are ignored), like the server that
//! recorded `tests/fixtures/claude-code-2.1.328`:
//!
//! - `DO: <Tool> <json input>`: one `tool_use` turn each, in order; the next one is sent
//!   when the previous tool's result comes back;
//! - `SAY: <text>`: after the last `DO:`, the answer is the text `DONE: <text>`;
//! - `FAIL: <status>`: every request fails with that HTTP status and an Anthropic error body;
//! - `STALL`: after the last `DO:`, the request is read and never answered.
//!
//! Other endpoints: `count_tokens` gets a count, HEAD gets 200, anything else a 404 error
//! body and a line on stderr, so an unexpected call is visible in the test output.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

#[path = "http1.rs"]
mod http1;
use http1::{Request, read_request, write_response};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The JSON body, when there was one.
    pub body: Option<Value>,
}

/// The running server; stops (with all its connections) when dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    task: JoinHandle<()>,
}

impl FakeAnthropic {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let conn_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            // Owned by this task, so aborting it drops (and aborts) every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, Arc::clone(&conn_log)));
            }
        });
        Self { addr, log, task }
    }

    /// For `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    /// The `/v1/messages` requests, in order.
    pub fn message_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.split('?').next() == Some("/v1/messages"))
            .filter_map(|r| r.body)
            .collect()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Reply {
    Send {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    Stall,
}

async fn serve(stream: TcpStream, log: Arc<Mutex<Vec<Logged>>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // Keep-alive: one request after another until the client closes.
    while let Ok(Some(request)) = read_request(&mut read, &mut write).await {
        let body = serde_json::from_slice(&request.body).ok();
        log.lock().unwrap().push(Logged {
            method: request.method.clone(),
            path: request.path.clone(),
            body: body.clone(),
        });
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        match reply(&request, body.as_ref()) {
            Reply::Stall => std::future::pending::<()>().await,
            Reply::Send {
                status,
                content_type,
                body,
            } => {
                let head_only = request.method == "HEAD";
                let sent = write_response(&mut write, status, content_type, &body, head_only).await;
                if sent.is_err() || close {
                    return;
                }
            }
        }
    }
}

fn reply(request: &Request, body: Option<&Value>) -> Reply {
    let path = request.path.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("HEAD", _) => json_reply(200, json!({})),
        ("POST", "/v1/messages/count_tokens") => json_reply(200, json!({"input_tokens": 120})),
        ("POST", "/v1/messages") => messages(body.unwrap_or(&Value::Null)),
        (method, _) => {
            eprintln!("fake-anthropic: unhandled {method} {}", request.path);
            error_reply(404, "not_found_error", "no such endpoint in the fake")
        }
    }
}

/// What the prompt asks the model to do.
#[derive(Default)]
struct Script {
    actions: Vec<(String, Value)>,
    say: String,
    fail: Option<u16>,
    stall: bool,
}

impl Script {
    fn parse(prompt: &str) -> Self {
        let mut script = Script::default();
        for line in prompt.lines().map(str::trim) {
            if let Some(action) = line.strip_prefix("DO:") {
                let (tool, input) = action
                    .trim()
                    .split_once(' ')
                    .unwrap_or((action.trim(), "{}"));
                let input = serde_json::from_str(input).unwrap_or_else(|e| {
                    eprintln!("fake-anthropic: bad DO input {input:?}: {e}");
                    json!({})
                });
                script.actions.push((tool.to_owned(), input));
            } else if let Some(text) = line.strip_prefix("SAY:") {
                script.say = text.trim().to_owned();
            } else if let Some(status) = line.strip_prefix("FAIL:") {
                script.fail = status.trim().parse().ok();
            } else if line == "STALL" {
                script.stall = true;
            }
        }
        script
    }
}

fn messages(body: &Value) -> Reply {
    let messages = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let prompt_at = messages.iter().rposition(is_prompt);
    let script = Script::parse(
        &prompt_at
            .map(|i| prompt_text(&messages[i]))
            .unwrap_or_default(),
    );
    if let Some(status) = script.fail {
        return error_reply(status, error_type(status), "scripted failure");
    }
    // Tool calls already made for this prompt decide which step comes next.
    let done = messages[prompt_at.map_or(0, |i| i + 1)..]
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_use")
        .count();
    let block = match script.actions.get(done) {
        Some((name, input)) => {
            json!({"type": "tool_use", "id": next_id("toolu"), "name": name, "input": input})
        }
        None if script.stall => return Reply::Stall,
        None => json!({"type": "text", "text": format!("DONE: {}", script.say)}),
    };
    let stop_reason = if block["type"] == "tool_use" {
        "tool_use"
    } else {
        "end_turn"
    };
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-6");
    let usage = json!({"input_tokens": 120, "output_tokens": 30});
    if body["stream"] != true {
        return json_reply(
            200,
            json!({"id": next_id("msg"), "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage}),
        );
    }
    let (start_block, delta) = if block["type"] == "tool_use" {
        let partial = block["input"].to_string();
        (
            json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
            json!({"type": "input_json_delta", "partial_json": partial}),
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": block["text"]}),
        )
    };
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": next_id("msg"),
            "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 120, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": start_block}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let body = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Reply::Send {
        status: 200,
        content_type: "text/event-stream",
        body,
    }
}

/// A user message that carries a prompt rather than tool results.
fn is_prompt(message: &Value) -> bool {
    let has_tool_result = message["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    message["role"] == "user" && !has_tool_result && !prompt_text(message).trim().is_empty()
}

fn prompt_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn next_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}_fake{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Send {
        status,
        content_type: "application/json",
        body: body.to_string(),
    }
}

fn error_reply(status: u16, kind: &str, message: &str) -> Reply {
    json_reply(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two requests on one connection: a chunked body, then a Content-Length one.
    #[tokio::test]
    async fn speaks_keep_alive_http_with_both_body_framings() {
        let api = FakeAnthropic::start().await;
        let mut conn = TcpStream::connect(api.addr).await.unwrap();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"SAY: hi"}]}"#;
        let (a, b) = body.split_at(10);
        let (la, lb) = (a.len(), b.len());
        let chunked = format!(
            "POST /v1/messages/count_tokens HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
             {la:x}\r\n{a}\r\n{lb:x}\r\n{b}\r\n0\r\n\r\n"
        );
        let plain = format!(
            "POST /v1/messages HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(format!("{chunked}{plain}").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        assert!(response.contains(r#"{"input_tokens":120}"#), "{response}");
        assert!(response.contains(r#""text":"DONE: hi""#), "{response}");
        let logged: Vec<_> = api
            .requests()
            .into_iter()
            .map(|r| (r.path, r.body.is_some()))
            .collect();
        let expected = [("/v1/messages/count_tokens", true), ("/v1/messages", true)];
        assert_eq!(logged, expected.map(|(p, b)| (p.to_owned(), b)));
    }
}
