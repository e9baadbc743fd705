//! The recorded output of the real Claude Code CLI 2.1.328 (`tests/fixtures`, copied from the shared fixtures; see its
//! README) read through `StreamAccumulator` exactly as `ClaudeRunner` reads it, and the
//! garbage the reader must survive without a panic or unbounded memory.

#[path = "support/claude.rs"]
mod support;

use actors::agent::{AgentError, AgentOutcome, AgentProgress};
use borg::claude::process::{Line, LineReader};
use borg::claude::{Notes, StreamAccumulator};
use tokio::io::BufReader;

/// Every fixture and the exit code the CLI gave it (README table). A fixture added to the
/// folder without a line here fails `every_fixture_is_read_cleanly`.
const FIXTURES: &[(&str, i32)] = &[
    ("01-tools", 0),
    ("02-resume", 0),
    ("03-text", 0),
    ("04-max-turns", 1),
    ("05-tool-denied", 0),
    ("06-api-500", 1),
    ("07-api-429", 1),
    ("08-bash-error", 0),
    ("09-system-prompt", 0),
];

struct Replay {
    progress: Vec<AgentProgress>,
    notes: Notes,
    outcome: AgentOutcome,
}

fn replay_text(text: &str, exit_code: Option<i32>, stderr: &str) -> Replay {
    let mut acc = StreamAccumulator::new();
    let progress = text.lines().flat_map(|l| acc.push_line(l)).collect();
    let notes = acc.notes().clone();
    let outcome = acc.finish(exit_code, stderr);
    Replay {
        progress,
        notes,
        outcome,
    }
}

fn fixture(name: &str) -> Option<String> {
    let path = support::fixtures_dir()?.join(format!("{name}.jsonl"));
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The fixture replayed with the exit code it was recorded with.
fn replay(name: &str) -> Option<Replay> {
    let code = FIXTURES.iter().find(|(n, _)| *n == name).expect("listed").1;
    Some(replay_text(&fixture(name)?, Some(code), ""))
}

const SESSION_01: &str = "a46984af-d74d-4b1c-8a17-f8085397b4c8";

#[test]
fn every_fixture_is_read_cleanly() {
    let Some(dir) = support::fixtures_dir() else {
        return;
    };
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".jsonl")
                .map(str::to_owned)
        })
        .collect();
    found.sort();
    let listed: Vec<_> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(found, listed, "fixtures on disk vs the FIXTURES table");
    for (name, _) in FIXTURES {
        let r = replay(name).unwrap();
        assert_eq!(r.notes.skipped_lines, 0, "{name}: every line is an event");
        assert!(r.outcome.session_id.is_some(), "{name}: session id");
        assert!(
            r.outcome.num_turns.is_some() && r.outcome.cost_usd.is_some(),
            "{name}: result read"
        );
        assert!(
            matches!(r.progress.first(), Some(AgentProgress::Started { .. })),
            "{name}"
        );
        let no_result = matches!(
            r.outcome.error,
            Some(AgentError::Protocol(_) | AgentError::Exit { .. })
        );
        assert!(!no_result, "{name}: {:?}", r.outcome.error);
    }
}

#[test]
fn tool_run_reports_session_text_cost_turns_and_progress() {
    let Some(r) = replay("01-tools") else { return };
    assert_eq!(r.outcome.error, None);
    assert_eq!(r.outcome.session_id.as_deref(), Some(SESSION_01));
    assert_eq!(r.outcome.text, "DONE: created hello.txt");
    assert_eq!(r.outcome.num_turns, Some(3));
    assert!(r.outcome.cost_usd.unwrap() > 0.0);
    let tool = |name: &str, summary: &str| AgentProgress::ToolUse {
        name: name.into(),
        summary: summary.into(),
    };
    assert_eq!(
        r.progress,
        vec![
            AgentProgress::Started {
                session_id: SESSION_01.into()
            },
            tool("Write", "Write hello.txt"),
            tool("Bash", "Bash: cat hello.txt && echo listed"),
            AgentProgress::Text("DONE: created hello.txt".into()),
        ]
    );
    assert!(r.notes.failed_tools.is_empty() && r.notes.permission_denials.is_empty());
}

#[test]
fn resumed_run_keeps_the_session_of_the_first() {
    let Some(r) = replay("02-resume") else { return };
    assert_eq!(r.outcome.error, None);
    assert_eq!(r.outcome.session_id.as_deref(), Some(SESSION_01));
    assert_eq!(r.outcome.text, "DONE: edited");
    assert_eq!(r.outcome.num_turns, Some(2));
    assert!(r.outcome.cost_usd.unwrap() > 0.0);
    let summaries: Vec<_> = r
        .progress
        .iter()
        .filter(|p| matches!(p, AgentProgress::ToolUse { .. }))
        .collect();
    assert_eq!(
        summaries,
        [&AgentProgress::ToolUse {
            name: "Edit".into(),
            summary: "Edit hello.txt".into()
        }]
    );
}

#[test]
fn plain_answer_and_appended_system_prompt_succeed() {
    for (name, text) in [
        ("03-text", "DONE: The answer is 42."),
        ("09-system-prompt", "DONE: ok"),
    ] {
        let Some(r) = replay(name) else { return };
        assert_eq!(r.outcome.error, None, "{name}");
        assert_eq!(r.outcome.text, text, "{name}");
        assert_eq!(r.outcome.num_turns, Some(1), "{name}");
        assert!(r.outcome.cost_usd.unwrap() > 0.0, "{name}");
        assert!(
            r.progress.contains(&AgentProgress::Text(text.into())),
            "{name}"
        );
    }
}

#[test]
fn max_turns_is_a_max_turns_failure_whatever_the_exit_code() {
    let Some(text) = fixture("04-max-turns") else {
        return;
    };
    for code in [1, 0] {
        let r = replay_text(&text, Some(code), "");
        assert_eq!(r.outcome.error, Some(AgentError::MaxTurns), "exit {code}");
        assert_eq!(
            r.outcome.session_id.as_deref(),
            Some("2b97069d-ebce-4357-b111-59ba3546b66a")
        );
        assert_eq!(r.outcome.num_turns, Some(3));
    }
}

#[test]
fn refused_tool_is_noted_but_the_run_succeeds() {
    let Some(r) = replay("05-tool-denied") else {
        return;
    };
    assert_eq!(r.outcome.error, None);
    assert_eq!(r.outcome.text, "DONE: tried");
    // Seen both as an event and in result.permission_denials: noted once.
    assert_eq!(
        r.notes.permission_denials.len(),
        1,
        "{:?}",
        r.notes.permission_denials
    );
    let denial = &r.notes.permission_denials[0];
    assert_eq!(denial.tool, "Write");
    assert!(
        denial.message.contains("haven't granted"),
        "{}",
        denial.message
    );
    assert_eq!(r.notes.failed_tool_count, 1);
    assert_eq!(r.notes.failed_tools[0].tool, "Write");
}

#[test]
fn api_failures_are_api_errors_although_subtype_says_success() {
    let cases = [
        ("06-api-500", 500, "api_error", "500 server_error"),
        ("07-api-429", 429, "rate_limit_error", "429 rate_limit"),
    ];
    for (name, status, kind, retry) in cases {
        let Some(text) = fixture(name) else { return };
        // is_error decides, not the exit code: exit 0 must not turn it into a success.
        for code in [1, 0] {
            let r = replay_text(&text, Some(code), "");
            let Some(AgentError::Api {
                status: s,
                kind: k,
                message,
            }) = &r.outcome.error
            else {
                panic!("{name}: {:?}", r.outcome.error);
            };
            assert_eq!((*s, k.as_deref()), (Some(status), Some(kind)), "{name}");
            assert!(message.contains(&status.to_string()), "{name}: {message}");
            assert_eq!(r.outcome.cost_usd, Some(0.0), "{name}");
            assert!(
                r.progress.contains(&AgentProgress::Retrying {
                    attempt: 1,
                    error: retry.into()
                }),
                "{name}: {:?}",
                r.progress
            );
            // The CLI's synthetic error message is not the agent speaking.
            assert!(
                !r.progress
                    .iter()
                    .any(|p| matches!(p, AgentProgress::Text(_))),
                "{name}"
            );
            assert_eq!(r.notes.api_retries, 1);
        }
    }
}

#[test]
fn failing_bash_command_is_noted_but_the_run_succeeds() {
    let Some(r) = replay("08-bash-error") else {
        return;
    };
    assert_eq!(r.outcome.error, None);
    assert_eq!(r.outcome.text, "DONE: tests failed");
    assert_eq!(r.notes.failed_tool_count, 1);
    assert_eq!(r.notes.failed_tools[0].tool, "Bash");
    assert!(r.notes.failed_tools[0].message.starts_with("Exit code 3"));
    assert!(r.progress.contains(&AgentProgress::ToolUse {
        name: "Bash".into(),
        summary: "Bash: cargo test 2>&1; exit 3".into()
    }));
}

#[test]
fn nonzero_exit_after_a_successful_result_is_a_failure() {
    let Some(text) = fixture("03-text") else {
        return;
    };
    let r = replay_text(&text, Some(2), "killed by something");
    assert_eq!(
        r.outcome.error,
        Some(AgentError::Exit {
            code: Some(2),
            stderr_tail: "killed by something".into()
        })
    );
    // What the run produced is still there for the caller.
    assert_eq!(r.outcome.text, "DONE: The answer is 42.");
    let r = replay_text(&text, None, "");
    assert!(
        matches!(r.outcome.error, Some(AgentError::Exit { code: None, .. })),
        "a signal is a failure"
    );
}

#[test]
fn empty_output_is_an_exit_or_protocol_error() {
    let r = replay_text("", Some(1), "Error: invalid API key");
    assert_eq!(
        r.outcome.error,
        Some(AgentError::Exit {
            code: Some(1),
            stderr_tail: "Error: invalid API key".into()
        })
    );
    let r = replay_text("", Some(0), "");
    assert!(
        matches!(r.outcome.error, Some(AgentError::Protocol(_))),
        "{:?}",
        r.outcome.error
    );
}

#[test]
fn half_a_json_line_is_skipped_and_the_rest_still_counts() {
    let Some(text) = fixture("03-text") else {
        return;
    };
    let last = text.lines().last().unwrap();
    let cut = format!(
        "{}\n{}",
        text.lines().take(2).collect::<Vec<_>>().join("\n"),
        &last[..last.len() / 2]
    );
    let r = replay_text(&cut, Some(0), "");
    assert_eq!(r.notes.skipped_lines, 1);
    assert!(
        matches!(r.outcome.error, Some(AgentError::Protocol(_))),
        "no result event"
    );
    assert_eq!(
        r.outcome.session_id.as_deref(),
        Some("5d74226d-cffe-4881-93a2-f7f5a6d2efad")
    );
    assert_eq!(
        r.outcome.text, "DONE: The answer is 42.",
        "falls back to the assistant's text"
    );
}

#[test]
fn unknown_events_fields_and_odd_values_are_ignored() {
    let lines = [
        r#"{"type":"system","subtype":"init","session_id":"s1","cwd":"/w","brand_new":[1,2]}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
        r#"{"type":"system","subtype":"hook_started","hook":"x"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"hi","extra":1},{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/w/a.rs"}},{"type":"text","text":42}]}}"#,
        r#"{"type":"user","message":{"content":"a bare string"}}"#,
        r#"[1,2,3]"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s2","total_cost_usd":"lots","num_turns":-1}"#,
    ];
    let r = replay_text(&lines.join("\n"), Some(0), "");
    assert_eq!(r.outcome.error, None);
    assert_eq!(
        r.outcome.session_id.as_deref(),
        Some("s2"),
        "the last session id wins"
    );
    assert_eq!(
        (r.outcome.cost_usd, r.outcome.num_turns),
        (None, None),
        "odd values read as absent"
    );
    assert_eq!(
        r.notes.skipped_lines, 1,
        "only the JSON array is not an event"
    );
    assert!(r.progress.contains(&AgentProgress::Text("hi".into())));
    assert!(r.progress.contains(&AgentProgress::ToolUse {
        name: "Read".into(),
        summary: "Read a.rs".into()
    }));
}

/// A deterministic stream of bytes of every value (xorshift), newlines included.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[tokio::test]
async fn random_bytes_are_skipped_without_a_panic() {
    let bytes = noise(256 * 1024);
    let mut reader = LineReader::new(BufReader::with_capacity(4096, bytes.as_slice()), 1024);
    let mut acc = StreamAccumulator::new();
    let mut lines = 0;
    while let Some(line) = reader.next_line().await.unwrap() {
        lines += 1;
        match line {
            Line::Text(text) => assert!(acc.push_line(&text).is_empty()),
            Line::TooLong { bytes } => acc.skip_oversized(bytes),
        }
    }
    assert!(lines > 100, "the noise has newlines");
    let outcome = acc.finish(Some(1), "");
    assert!(matches!(outcome.error, Some(AgentError::Exit { .. })));
}

#[tokio::test]
async fn a_two_megabyte_line_is_dropped_by_the_reader_and_parsed_by_the_accumulator() {
    let huge_text = "x".repeat(2 << 20);
    let huge = format!(
        r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"{huge_text}"}}]}}}}"#
    );
    let stream = format!("{{\"type\":\"keep_alive\"}}\r\n{huge}\nafter\nlast-without-newline");
    let mut reader = LineReader::new(BufReader::with_capacity(8192, stream.as_bytes()), 1 << 20);
    assert_eq!(
        reader.next_line().await.unwrap(),
        Some(Line::Text(r#"{"type":"keep_alive"}"#.into()))
    );
    assert_eq!(
        reader.next_line().await.unwrap(),
        Some(Line::TooLong { bytes: huge.len() })
    );
    assert_eq!(
        reader.next_line().await.unwrap(),
        Some(Line::Text("after".into()))
    );
    assert_eq!(
        reader.next_line().await.unwrap(),
        Some(Line::Text("last-without-newline".into()))
    );
    assert_eq!(reader.next_line().await.unwrap(), None);
    // The accumulator itself has no limit: a big event within the reader's is fine...
    let r = replay_text(&huge, Some(0), "");
    assert_eq!(r.progress, vec![AgentProgress::Text(huge_text)]);
    // ...and two megabytes of garbage is one skipped line.
    let r = replay_text(&"{".repeat(2 << 20), Some(0), "");
    assert_eq!(r.notes.skipped_lines, 1);
}

#[tokio::test]
async fn invalid_utf8_is_replaced_not_fatal() {
    let bytes: &[u8] = b"{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"a\xffb\"}]}}\n";
    let mut reader = LineReader::new(bytes, 1024);
    let Some(Line::Text(line)) = reader.next_line().await.unwrap() else {
        panic!()
    };
    let r = replay_text(&line, Some(0), "");
    assert_eq!(r.progress, vec![AgentProgress::Text("a\u{fffd}b".into())]);
}
