//! The rules that script the model for prompts borg writes itself (the pipeline's phases),
//! serializable as JSON so a test or `borg demo` can load one.
//!
//! A rule matches a request when every one of its `when` substrings appears in the request's
//! text: the system prompt (where the CLI puts `--append-system-prompt`) plus the last user
//! message that is not tool results. A matching rule then plays its `tool_calls`, one per
//! turn like the prompt-embedded `DO:` lines, and answers `say` last. Rules are tried in order
//! and the first match wins.
//!
//! ```json
//! {"rules": [{"name": "spec", "when": ["Phase: spec"],
//!             "tool_calls": [{"tool": "Write",
//!                             "input": {"file_path": "{spec_file}", "content": "# Spec\n"}}],
//!             "say": "[scripted model] spec written"}]}
//! ```
//!
//! Strings in tool inputs and in `say` may contain placeholders, filled from the request:
//! - `{cwd}`: the CLI's working directory, from the `Primary working directory:` line of the
//!   environment block the CLI sends (the Write tool wants absolute paths);
//! - `{spec_file}`: the value of a `Spec file: <path>` line of the request's text, made
//!   absolute against `{cwd}` when it is relative.
//!
//! Only these two names are replaced, so shell code with braces passes through untouched (a
//! shell variable spelled `${cwd}` would be replaced, though: name shell variables otherwise).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The rules, tried in order before the prompt-embedded syntax. The default has none, so
/// only the prompt-embedded syntax applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub rules: Vec<Rule>,
}

/// One scripted answer: when the request says all of `when`, play `tool_calls`, then `say`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names the rule in the request log and in error messages; the rule's position when
    /// empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Substrings that must all appear in the request's text. Empty matches every request.
    pub when: Vec<String>,
    /// Played one per turn, in order; the next is sent when the previous one's result comes
    /// back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The final answer, after the last tool call.
    #[serde(default)]
    pub say: String,
}

/// A tool the scripted model asks the CLI to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The CLI's tool name: `Write`, `Edit`, `Read`, `Bash`, ...
    pub tool: String,
    /// The tool's input: a JSON object, exactly what the model would send.
    pub input: Value,
}

/// A script that cannot be used, with what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// Not JSON, or not the shape of a script (serde's message has the line and column).
    Json(String),
    /// Readable JSON with a value no rule can use.
    Invalid { rule: String, problem: String },
    /// The script file could not be read.
    Read { path: String, problem: String },
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(why) => write!(f, "the model script is not valid: {why}"),
            Self::Invalid { rule, problem } => {
                write!(f, "the model script's rule {rule} is not usable: {problem}")
            }
            Self::Read { path, problem } => {
                write!(f, "cannot read the model script {path}: {problem}")
            }
        }
    }
}

impl std::error::Error for ScriptError {}

impl Script {
    /// Parses and checks a script, e.g. `{"rules": [...]}`.
    pub fn from_json(text: &str) -> Result<Self, ScriptError> {
        let script: Script =
            serde_json::from_str(text).map_err(|e| ScriptError::Json(e.to_string()))?;
        script.check()?;
        Ok(script)
    }

    /// Reads a script file ([`Script::from_json`]).
    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError::Read {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    pub fn to_json(&self) -> String {
        // A Script holds only strings, vectors and JSON values: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The checks serde's shape cannot express. Each names the rule it is about.
    pub fn check(&self) -> Result<(), ScriptError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let invalid = |problem: String| ScriptError::Invalid {
                rule: rule.label(index),
                problem,
            };
            if rule.when.iter().any(|w| w.is_empty()) {
                return Err(invalid(
                    "an empty `when` string matches everything; leave it out".into(),
                ));
            }
            for (step, call) in rule.tool_calls.iter().enumerate() {
                if call.tool.trim().is_empty() {
                    return Err(invalid(format!("tool call {} has no tool name", step + 1)));
                }
                if !call.input.is_object() {
                    return Err(invalid(format!(
                        "the input of tool call {} ({}) must be a JSON object, not {}",
                        step + 1,
                        call.tool,
                        call.input
                    )));
                }
            }
        }
        Ok(())
    }

    /// The first rule whose `when` strings all appear in `text`, with its label.
    pub(crate) fn matching(&self, text: &str) -> Option<(String, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.when.iter().all(|w| text.contains(w.as_str())))
            .map(|(index, rule)| (rule.label(index), rule))
    }
}

impl Rule {
    /// `"spec"`, or `"#2"` for an unnamed second rule.
    fn label(&self, index: usize) -> String {
        if self.name.is_empty() {
            format!("#{}", index + 1)
        } else {
            format!("{:?}", self.name)
        }
    }
}

/// The values of the placeholders for one request; `None` when the request does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Placeholders {
    pub(crate) cwd: Option<String>,
    pub(crate) spec_file: Option<String>,
}

impl Placeholders {
    /// `text` with the placeholders filled; the error names a placeholder the request gave
    /// no value for.
    pub(crate) fn fill(&self, text: &str) -> Result<String, String> {
        let mut out = text.to_owned();
        for (name, value, source) in [
            (
                "{cwd}",
                &self.cwd,
                "a `Primary working directory:` line (the CLI's environment block)",
            ),
            (
                "{spec_file}",
                &self.spec_file,
                "a `Spec file: <path>` line in the prompt or system prompt",
            ),
        ] {
            if out.contains(name) {
                let value = value
                    .as_deref()
                    .ok_or_else(|| format!("{name} is used but the request has no {source}"))?;
                out = out.replace(name, value);
            }
        }
        Ok(out)
    }

    /// Every string inside `value` filled ([`Placeholders::fill`]); keys are left alone.
    pub(crate) fn fill_json(&self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.fill(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.fill_json(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.fill_json(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_fill_strings_deep_inside_the_input_and_name_what_is_missing() {
        let values = Placeholders {
            cwd: Some("/work".into()),
            spec_file: None,
        };
        let input = json!({"file_path": "{cwd}/a.sh", "list": ["{cwd}", 3], "{cwd}": "${x}"});
        assert_eq!(
            values.fill_json(&input).unwrap(),
            json!({"file_path": "/work/a.sh", "list": ["/work", 3], "{cwd}": "${x}"})
        );
        let err = values.fill("{spec_file}").unwrap_err();
        assert!(
            err.contains("{spec_file}") && err.contains("Spec file:"),
            "{err}"
        );
    }

    #[test]
    fn the_first_rule_whose_strings_all_appear_wins() {
        let script = Script::from_json(
            r#"{"rules": [{"when": ["a", "b"]}, {"name": "second", "when": ["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(script.matching("b and a").unwrap().0, "#1");
        assert_eq!(script.matching("just a").unwrap().0, "\"second\"");
        assert!(script.matching("neither").is_none());
    }
}
