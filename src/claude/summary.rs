//! One-line descriptions of tool calls ("Write hello.txt", "Bash: cargo test"), for progress
//! messages in a chat and for logs. They must stay short whatever the agent sends: a Bash
//! command can be a whole script and a path can be deep, so every summary is capped at
//! [`MAX_SUMMARY_CHARS`] characters.

use serde_json::Value;

/// Longest summary, in characters (not bytes: chat platforms count characters).
pub const MAX_SUMMARY_CHARS: usize = 80;

/// Describes a `tool_use` block. `cwd` (from `system/init`) makes paths inside the working
/// directory relative, which is what a reader recognises.
pub fn tool_summary(name: &str, input: &Value, cwd: Option<&str>) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str).map(one_line);
    let detail = match name {
        "Write" | "Edit" | "MultiEdit" | "Read" => field("file_path").map(|p| relative(&p, cwd)),
        "NotebookEdit" => field("notebook_path").map(|p| relative(&p, cwd)),
        "Glob" | "Grep" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        // A shell command reads best after a colon: "Bash: ls -la".
        "Bash" => {
            return truncate(
                &format!("Bash: {}", field("command").unwrap_or_default()),
                MAX_SUMMARY_CHARS,
            );
        }
        _ => {
            return match field("description") {
                Some(d) => truncate(&format!("{name}: {d}"), MAX_SUMMARY_CHARS),
                None => truncate(name, MAX_SUMMARY_CHARS),
            };
        }
    };
    match detail {
        Some(d) if !d.is_empty() => truncate(&format!("{name} {d}"), MAX_SUMMARY_CHARS),
        _ => truncate(name, MAX_SUMMARY_CHARS),
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with "…". Never splits a character.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// Collapses newlines and runs of whitespace, so a multi-line command stays one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn relative(path: &str, cwd: Option<&str>) -> String {
    let Some(cwd) = cwd.map(|c| c.trim_end_matches('/')) else {
        return path.to_owned();
    };
    match path
        .strip_prefix(cwd)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_inside_the_workdir_become_relative() {
        let input = json!({"file_path": "/w/repo/src/a.rs", "content": "x"});
        assert_eq!(
            tool_summary("Write", &input, Some("/w/repo")),
            "Write src/a.rs"
        );
        assert_eq!(
            tool_summary("Write", &input, Some("/w/re")),
            "Write /w/repo/src/a.rs"
        );
    }

    #[test]
    fn long_multiline_commands_are_one_capped_line() {
        let cmd = format!("echo start\n{}", "x".repeat(500));
        let s = tool_summary("Bash", &json!({ "command": cmd }), None);
        assert!(s.starts_with("Bash: echo start x"), "{s}");
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn unknown_tools_use_their_description() {
        let s = tool_summary("Task", &json!({"description": "find the bug"}), None);
        assert_eq!(s, "Task: find the bug");
        assert_eq!(tool_summary("TodoWrite", &json!({}), None), "TodoWrite");
    }
}
