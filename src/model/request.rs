//! What the scripted model reads from a Messages API request body: the prompt (the last user
//! message that is not tool results, without the `<system-reminder>` blocks the CLI adds), the
//! system prompt, how many tool calls were already made for that prompt, and the values of
//! the rule placeholders.

use serde_json::Value;

use super::script::Placeholders;

/// The line of the CLI's environment block that names its working directory (claude-code
/// 2.1.328 sends it in a `<system-reminder>` of the first user message).
const CWD_LINE: &str = "Primary working directory:";
/// How a pipeline prompt names its phase: a line `Phase: <name>` (`spec`, `qa`, `impl`), for
/// rules to match on.
pub const PHASE_LINE: &str = "Phase:";
/// How a pipeline prompt names the spec file: a line `Spec file: <path>`, which fills the
/// `{spec_file}` placeholder.
pub const SPEC_FILE_LINE: &str = "Spec file:";

/// A read-only view of one `/v1/messages` body.
pub(crate) struct Conversation<'a> {
    body: &'a Value,
    messages: &'a [Value],
    /// Index of the prompt in `messages`.
    prompt_at: Option<usize>,
}

impl<'a> Conversation<'a> {
    pub(crate) fn new(body: &'a Value) -> Self {
        let messages = body["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let prompt_at = messages.iter().rposition(is_prompt);
        Self {
            body,
            messages,
            prompt_at,
        }
    }

    /// The prompt's text; empty when there is none.
    pub(crate) fn prompt(&self) -> String {
        self.prompt_at
            .map(|i| prompt_text(&self.messages[i]))
            .unwrap_or_default()
    }

    /// The system prompt's text (a string, or the text of its blocks joined by newlines).
    pub(crate) fn system(&self) -> String {
        texts(&self.body["system"]).join("\n")
    }

    /// What rules match against: the system prompt, then the prompt.
    pub(crate) fn rule_text(&self) -> String {
        format!("{}\n{}", self.system(), self.prompt())
    }

    /// Tool calls the model already made for the prompt: they decide which step comes next.
    pub(crate) fn tool_calls_made(&self) -> usize {
        self.messages[self.prompt_at.map_or(0, |i| i + 1)..]
            .iter()
            .filter(|m| m["role"] == "assistant")
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .filter(|b| b["type"] == "tool_use")
            .count()
    }

    /// The placeholder values this request gives.
    pub(crate) fn placeholders(&self) -> Placeholders {
        // The environment block sits in a system reminder, which `prompt()` leaves out: look
        // through every text of the request. The last mention wins (a resumed session carries
        // its earlier ones too, but resuming needs the same directory anyway).
        let everything = texts(&self.body["system"])
            .into_iter()
            .chain(
                self.messages
                    .iter()
                    .flat_map(|m| texts(&m["content"]).into_iter()),
            )
            .collect::<Vec<_>>()
            .join("\n");
        let cwd = last_line_value(&everything, CWD_LINE);
        let spec_file = last_line_value(&self.rule_text(), SPEC_FILE_LINE).map(|path| {
            match (&cwd, path.starts_with('/')) {
                (Some(cwd), false) => format!("{}/{path}", cwd.trim_end_matches('/')),
                _ => path,
            }
        });
        Placeholders { cwd, spec_file }
    }
}

/// The value after `key` on the last line that starts with it (after leading spaces and
/// list dashes).
fn last_line_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            line.trim_start_matches([' ', '\t', '-'])
                .strip_prefix(key)
                .map(|value| value.trim().to_owned())
        })
        .rfind(|value| !value.is_empty())
}

/// A user message that carries a prompt rather than tool results.
fn is_prompt(message: &Value) -> bool {
    let has_tool_result = message["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    message["role"] == "user" && !has_tool_result && !prompt_text(message).trim().is_empty()
}

fn prompt_text(message: &Value) -> String {
    texts(&message["content"])
        .into_iter()
        .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The texts of a content value: a plain string, or the `text` blocks of an array.
fn texts(content: &Value) -> Vec<&str> {
    match content {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape claude-code 2.1.328 sends: system blocks, then one user message whose first
    /// blocks are reminders (one with the environment) and whose last is the prompt.
    fn request(prompt: &str) -> Value {
        json!({
            "system": [{"type": "text", "text": "You are Claude Code"},
                       {"type": "text", "text": "...\n\nPhase: qa\nSpec file: .borg/task-7/spec.md"}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\n# Environment\nYou have been invoked in the following environment: \n - Primary working directory: /workspace\n - Is a git repository: true\n</system-reminder>"},
                {"type": "text", "text": prompt}]}]
        })
    }

    #[test]
    fn reads_the_prompt_system_and_placeholders_as_the_cli_sends_them() {
        let body = request("Write the tests.");
        let conversation = Conversation::new(&body);
        assert_eq!(conversation.prompt(), "Write the tests.");
        assert!(conversation.rule_text().contains("Phase: qa"));
        assert!(conversation.rule_text().ends_with("Write the tests."));
        assert_eq!(
            conversation.placeholders(),
            Placeholders {
                cwd: Some("/workspace".into()),
                spec_file: Some("/workspace/.borg/task-7/spec.md".into()),
            }
        );
    }

    #[test]
    fn counts_tool_calls_since_the_prompt_only() {
        let mut body = request("go");
        let messages = body["messages"].as_array_mut().unwrap();
        let tool_use = json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]});
        let result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]});
        messages.extend([tool_use.clone(), result.clone()]);
        assert_eq!(Conversation::new(&body).tool_calls_made(), 1);
        let messages = body["messages"].as_array_mut().unwrap();
        messages.extend([
            json!({"role": "assistant", "content": "done"}),
            json!({"role": "user", "content": "next prompt"}),
            tool_use,
            result,
        ]);
        let conversation = Conversation::new(&body);
        assert_eq!(conversation.prompt(), "next prompt");
        assert_eq!(conversation.tool_calls_made(), 1);
    }
}
