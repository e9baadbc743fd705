//! The Messages API's answers as bytes: a whole message as JSON, or the streaming protocol
//! the CLI asks for (`stream: true`): `message_start`, `content_block_start/_delta/_stop`,
//! `message_delta`, `message_stop`, as server-sent events; and Anthropic's error bodies.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// What the server does with one request.
pub(crate) enum Reply {
    Send {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Read the request and never answer: a model that went silent.
    Stall,
}

/// The model's one content block: a tool call or the final text.
pub(crate) enum Block {
    ToolUse { name: String, input: Value },
    Text(String),
}

/// Token counts the CLI turns into a (non-zero, so visibly accounted) cost.
const INPUT_TOKENS: u64 = 120;
const OUTPUT_TOKENS: u64 = 30;

/// The answer to a `/v1/messages` request `body` whose turn is `block`.
pub(crate) fn message(body: &Value, block: Block) -> Reply {
    let (block, stop_reason) = match block {
        Block::ToolUse { name, input } => (
            json!({"type": "tool_use", "id": next_id("toolu"), "name": name, "input": input}),
            "tool_use",
        ),
        Block::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
    };
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-6");
    if body["stream"] != true {
        return json_reply(
            200,
            json!({"id": next_id("msg"), "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS}}),
        );
    }
    // Streamed as the real API does: an empty block first, its content in a delta.
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
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
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
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": OUTPUT_TOKENS}}),
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

/// Unique ids, labelled so a transcript shows they came from the scripted model.
fn next_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}_scripted{:06}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Anthropic's error type for an HTTP status, which the CLI reports and classifies by.
pub(crate) fn error_type(status: u16) -> &'static str {
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

pub(crate) fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Send {
        status,
        content_type: "application/json",
        body: body.to_string(),
    }
}

pub(crate) fn error_reply(status: u16, message: &str) -> Reply {
    json_reply(
        status,
        json!({"type": "error", "error": {"type": error_type(status), "message": message}}),
    )
}
