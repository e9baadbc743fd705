//! The model's next turn for one `/v1/messages` request: the first matching rule of the
//! [`Script`], else the prompt-embedded syntax the tests write into their prompts:
//!
//! - `DO: <Tool> <json input>`: one `tool_use` turn each, in order; the next one is sent
//!   when the previous tool's result comes back;
//! - `SAY: <text>`: after the last `DO:`, the answer is the text `DONE: <text>`;
//! - `FAIL: <status>`: every request fails with that HTTP status and an Anthropic error body;
//! - `STALL`: after the last `DO:`, the request is read and never answered.

use serde_json::{Value, json};

use super::request::Conversation;
use super::script::{Rule, Script};
use super::wire::{Block, Reply, error_reply, message};

/// The reply to a `/v1/messages` request, and the label of the rule that made it (`None`
/// for the prompt-embedded syntax).
pub(crate) fn next_turn(script: &Script, body: &Value) -> (Reply, Option<String>) {
    let conversation = Conversation::new(body);
    match script.matching(&conversation.rule_text()) {
        Some((label, rule)) => {
            let reply = by_rule(&conversation, body, &label, rule);
            // The log names the rule as written; the quoted label is for messages.
            let name = if rule.name.is_empty() {
                label
            } else {
                rule.name.clone()
            };
            (reply, Some(name))
        }
        None => (embedded(&conversation, body), None),
    }
}

fn by_rule(conversation: &Conversation, body: &Value, label: &str, rule: &Rule) -> Reply {
    let values = conversation.placeholders();
    let block = match rule.tool_calls.get(conversation.tool_calls_made()) {
        Some(call) => values.fill_json(&call.input).map(|input| Block::ToolUse {
            name: call.tool.clone(),
            input,
        }),
        None => values.fill(&rule.say).map(Block::Text),
    };
    match block {
        Ok(block) => message(body, block),
        // A script that does not fit the prompt is a bug to see at once, not a silent
        // wrong answer: the CLI reports this as an API error with the message below.
        Err(why) => {
            let why = format!("scripted model: rule {label}: {why}");
            eprintln!("{why}");
            error_reply(400, &why)
        }
    }
}

/// What a prompt asks the model to do in the prompt-embedded syntax.
#[derive(Default)]
struct Embedded {
    actions: Vec<(String, Value)>,
    say: String,
    fail: Option<u16>,
    stall: bool,
}

impl Embedded {
    fn parse(prompt: &str) -> Self {
        let mut script = Embedded::default();
        for line in prompt.lines().map(str::trim) {
            if let Some(action) = line.strip_prefix("DO:") {
                let (tool, input) = action
                    .trim()
                    .split_once(' ')
                    .unwrap_or((action.trim(), "{}"));
                let input = serde_json::from_str(input).unwrap_or_else(|e| {
                    eprintln!("scripted model: bad DO input {input:?}: {e}");
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

fn embedded(conversation: &Conversation, body: &Value) -> Reply {
    let script = Embedded::parse(&conversation.prompt());
    if let Some(status) = script.fail {
        return error_reply(status, "scripted failure");
    }
    let block = match script.actions.get(conversation.tool_calls_made()) {
        Some((name, input)) => Block::ToolUse {
            name: name.clone(),
            input: input.clone(),
        },
        None if script.stall => return Reply::Stall,
        None => Block::Text(format!("DONE: {}", script.say)),
    };
    message(body, block)
}
