//! Fills a phase's prompt template (see [`crate::pipeline::phase::PHASES`]) from a task.

use super::state::TaskSnapshot;

/// Replaces `{title}`, `{description}`, `{spec_file}`, `{test_cmd}`, `{attempt}`,
/// `{qa_files}`, `{conflicts}` and `{feedback}`. Values are inserted once, in one pass, so a task title that
/// contains `{feedback}` stays literal text.
pub fn render(template: &str, snap: &TaskSnapshot, test_cmd: &str) -> String {
    let description = if snap.task.description.trim().is_empty() {
        "(no further description)".to_owned()
    } else {
        snap.task.description.clone()
    };
    let qa_files = if snap.qa_files.is_empty() {
        "(none yet)".to_owned()
    } else {
        snap.qa_files.join(", ")
    };
    let feedback = snap
        .feedback
        .as_deref()
        .map(|f| format!("\n\n{f}"))
        .unwrap_or_default();
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "title" => snap.task.title.clone(),
            "description" => description.clone(),
            "spec_file" => snap.spec_file(),
            "test_cmd" => test_cmd.to_owned(),
            "attempt" => snap.impl_attempts.to_string(),
            "qa_files" => qa_files.clone(),
            "conflicts" => snap.conflicts.join(", "),
            "feedback" => feedback.clone(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, value(&after[..close])?)))
        {
            Some((close, v)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::task::state::NewTask;

    #[test]
    fn fills_placeholders_once() {
        let mut snap = TaskSnapshot::new(
            3,
            NewTask {
                repo: "r".into(),
                title: "Fix {feedback}".into(),
                description: String::new(),
                origin: None,
                requested_by: "cli".into(),
            },
            0,
        );
        snap.feedback = Some("It failed.".into());
        let text = render(
            "T={title} S={spec_file} C={test_cmd}{feedback} {unknown}",
            &snap,
            "make",
        );
        assert_eq!(
            text,
            "T=Fix {feedback} S=.borg/task-3/spec.md C=make\n\nIt failed. {unknown}"
        );
    }
}
