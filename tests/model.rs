//! `borg::model::ScriptedModel`, the scripted Messages API that `borg demo` and the claude
//! tests put in place of Claude: rules match on substrings of the system prompt and prompt
//! and play their tool calls in order, with `{cwd}`/`{spec_file}` filled from the request;
//! the prompt-embedded syntax still answers when no rule matches; bad scripts are clear
//! errors. Then the real `claude` CLI (skipped loudly when missing, a failure under
//! `BORG_TEST_STRICT=1`) writes a file through a `{cwd}` rule, and plays the whole demo
//! script on the sample repository: tests red after qa, green after impl.

#[path = "support/claude.rs"]
mod support;

use std::path::Path;

use actors::agent::AgentRunner;
use borg::claude::{ClaudeConfig, ClaudeRunner};
use borg::demo::{DEMO_TASK_TITLE, SAMPLE_TEST_COMMAND, create_sample_repo, demo_script};
use borg::model::{Rule, Script, ScriptedModel, ToolCall};
use serde_json::{Value, json};
use support::{Progress, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CWD_REMINDER: &str = "<system-reminder>\n# Environment\nYou have been invoked in the \
    following environment: \n - Primary working directory: /w/x\n - Is a git repository: \
    true\n</system-reminder>";

/// A model turn as the client sees it.
#[derive(Debug, PartialEq)]
enum Turn {
    ToolUse(String, Value),
    Text(String),
    /// Status, error type, message.
    Error(u16, String, String),
}

/// A first request as claude-code 2.1.328 shapes it: `system` blocks, one user message with
/// a reminder block then the prompt.
fn conversation(system: &str, reminder: &str, prompt: &str) -> Value {
    json!({"model": "claude-sonnet-4-6", "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code"}, {"type": "text", "text": system}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": reminder}, {"type": "text", "text": prompt}]}]})
}

/// `body` continued by the tool call `turn` and its result.
fn then(body: &Value, turn: &Turn) -> Value {
    let Turn::ToolUse(name, input) = turn else {
        panic!("not a tool call: {turn:?}")
    };
    let mut next = body.clone();
    let messages = next["messages"].as_array_mut().unwrap();
    let id = format!("toolu_{}", messages.len());
    messages.push(json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": id, "name": name, "input": input}]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": id, "content": "ok"}]}));
    next
}

/// POSTs `body` as the CLI does and reassembles the streamed turn.
async fn post(api: &ScriptedModel, body: &Value) -> Turn {
    let body = body.to_string();
    let mut conn = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let head = format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status != 200 {
        let error: Value = serde_json::from_str(payload).unwrap();
        let field = |k: &str| error["error"][k].as_str().unwrap().to_owned();
        return Turn::Error(status, field("type"), field("message"));
    }
    assert!(head.contains("text/event-stream"), "{head}");
    let events: Vec<Value> = payload
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let (start, delta) = (&events[1]["content_block"], &events[2]["delta"]);
    match start["type"].as_str() {
        Some("tool_use") => {
            assert_eq!(events[4]["delta"]["stop_reason"], "tool_use");
            let input = delta["partial_json"].as_str().unwrap();
            let name = start["name"].as_str().unwrap().to_owned();
            Turn::ToolUse(name, serde_json::from_str(input).unwrap())
        }
        _ => Turn::Text(delta["text"].as_str().unwrap().to_owned()),
    }
}

fn rule(name: &str, when: &[&str], calls: &[(&str, Value)], say: &str) -> Rule {
    Rule {
        name: name.to_owned(),
        when: when.iter().map(|w| w.to_string()).collect(),
        tool_calls: calls
            .iter()
            .map(|(tool, input)| ToolCall {
                tool: tool.to_string(),
                input: input.clone(),
            })
            .collect(),
        say: say.to_owned(),
    }
}

#[tokio::test]
async fn rules_match_all_their_strings_and_play_tool_calls_in_order() {
    let script = Script {
        rules: vec![
            rule(
                "qa",
                &["Phase: qa", "Add a greeting script"],
                &[
                    ("Write", json!({"file_path": "{cwd}/a.txt", "content": "A"})),
                    ("Bash", json!({"command": "ls {cwd} ${HOME}"})),
                ],
                "[scripted] done in {cwd}",
            ),
            rule("any qa", &["Phase: qa"], &[], "second rule"),
        ],
    };
    let api = ScriptedModel::start(script).await.unwrap();
    // The phase line in the system prompt (`--append-system-prompt`), the title in the prompt.
    let first = conversation("Phase: qa", CWD_REMINDER, "Task: Add a greeting script");
    let turn = post(&api, &first).await;
    assert_eq!(
        turn,
        Turn::ToolUse(
            "Write".into(),
            json!({"file_path": "/w/x/a.txt", "content": "A"})
        )
    );
    let second = then(&first, &turn);
    let turn = post(&api, &second).await;
    assert_eq!(
        turn,
        Turn::ToolUse("Bash".into(), json!({"command": "ls /w/x ${HOME}"}))
    );
    let turn = post(&api, &then(&second, &turn)).await;
    assert_eq!(turn, Turn::Text("[scripted] done in /w/x".into()));
    // Without the title only the second rule matches; the first one wins when both do.
    let other = conversation("Phase: qa", CWD_REMINDER, "Task: something else");
    assert_eq!(post(&api, &other).await, Turn::Text("second rule".into()));
    // A string inside a system reminder is not part of the prompt.
    let hidden = conversation("", "<system-reminder>Phase: qa</system-reminder>", "hi");
    assert_eq!(post(&api, &hidden).await, Turn::Text("DONE: ".into()));

    let rules: Vec<_> = api.requests().into_iter().map(|r| r.rule).collect();
    let named = |n: &str| Some(n.to_owned());
    assert_eq!(
        rules,
        [named("qa"), named("qa"), named("qa"), named("any qa"), None]
    );
}

#[tokio::test]
async fn the_prompt_embedded_syntax_answers_when_no_rule_matches() {
    let script = Script {
        rules: vec![rule("never", &["Phase: never"], &[], "not this")],
    };
    let api = ScriptedModel::start(script).await.unwrap();
    let asked = conversation(
        "a persona",
        CWD_REMINDER,
        "Look.\nDO: Read {\"file_path\": \"/etc/hostname\"}\nSAY: looked",
    );
    let turn = post(&api, &asked).await;
    assert_eq!(
        turn,
        Turn::ToolUse("Read".into(), json!({"file_path": "/etc/hostname"}))
    );
    assert_eq!(
        post(&api, &then(&asked, &turn)).await,
        Turn::Text("DONE: looked".into())
    );
    let failing = conversation("", "", "FAIL: 529");
    assert_eq!(
        post(&api, &failing).await,
        Turn::Error(529, "overloaded_error".into(), "scripted failure".into())
    );
    assert!(api.requests().iter().all(|r| r.rule.is_none()));
}

#[tokio::test]
async fn a_placeholder_the_request_cannot_fill_is_an_api_error_naming_it() {
    let script = Script {
        rules: vec![rule(
            "spec",
            &["Phase: spec"],
            &[("Write", json!({"file_path": "{spec_file}", "content": "x"}))],
            "",
        )],
    };
    let api = ScriptedModel::start(script).await.unwrap();
    let turn = post(
        &api,
        &conversation("Phase: spec", CWD_REMINDER, "no path here"),
    )
    .await;
    let Turn::Error(400, kind, message) = turn else {
        panic!("{turn:?}")
    };
    assert_eq!(kind, "invalid_request_error");
    assert!(
        message.contains("rule \"spec\"") && message.contains("{spec_file}"),
        "{message}"
    );
    assert!(message.contains("Spec file:"), "{message}");
}

#[test]
fn a_malformed_script_is_a_clear_error() {
    let cases = [
        ("{\"rules\": [", "EOF while parsing"),
        ("{\"rules\": [{\"say\": \"x\"}]}", "missing field `when`"),
        (
            "{\"rules\": [{\"when\": [], \"tool_call\": []}]}",
            "unknown field `tool_call`",
        ),
        (
            "{\"rules\": [{\"when\": [\"a\"], \"tool_calls\": [{\"tool\": \"Write\", \"input\": \"x\"}]}]}",
            "the input of tool call 1 (Write) must be a JSON object",
        ),
        (
            "{\"rules\": [{\"name\": \"n\", \"when\": [\"\"]}]}",
            "rule \"n\" is not usable: an empty `when` string",
        ),
        (
            "{\"rules\": [{\"when\": []}, {\"when\": [], \"tool_calls\": [{\"tool\": \" \", \"input\": {}}]}]}",
            "rule #2 is not usable: tool call 1 has no tool name",
        ),
    ];
    for (json, expected) in cases {
        let err = Script::from_json(json).unwrap_err().to_string();
        assert!(err.contains(expected), "{json}\n→ {err}");
        assert!(err.starts_with("the model script"), "{err}");
    }
    let missing = Script::load(Path::new("/nonexistent/script.json")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("cannot read the model script /nonexistent/script.json"),
        "{missing}"
    );
}

// ---- the real CLI ----------------------------------------------------------------------------

fn cli(bin: std::path::PathBuf, api: &ScriptedModel) -> ClaudeRunner {
    ClaudeRunner::new(ClaudeConfig {
        bin,
        extra_env: vec![
            ("ANTHROPIC_BASE_URL".to_owned(), api.base_url()),
            ("ANTHROPIC_API_KEY".to_owned(), "sk-test".to_owned()),
        ],
        inherit_model_access: false,
        ..ClaudeConfig::default()
    })
}

#[tokio::test]
async fn real_cli_writes_a_file_through_a_cwd_rule() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let script = Script {
        rules: vec![rule(
            "write",
            &["persona 51c9", "Phase: demo"],
            &[(
                "Write",
                json!({"file_path": "{cwd}/out/hello.txt", "content": "written in {cwd}\n"}),
            )],
            "[scripted model] wrote out/hello.txt",
        )],
    };
    let api = ScriptedModel::start(script).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "Phase: demo\nWrite the greeting file.\n");
    req.system_prompt = Some("- persona 51c9".into());
    req.allowed_tools = vec!["Write".into()];
    std::fs::create_dir_all(&req.workdir).unwrap();
    let workdir = req.workdir.clone();
    let progress = Progress::default();
    let outcome = cli(bin, &api).run(req, progress.sink()).await;

    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.text, "[scripted model] wrote out/hello.txt");
    assert_eq!(
        std::fs::read_to_string(workdir.join("out/hello.txt")).unwrap(),
        format!("written in {}\n", workdir.display()),
        "the CLI reported its cwd and the Write tool really ran there"
    );
    assert_eq!(progress.tool_summaries(), ["Write out/hello.txt"]);
    let rules: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/messages?"))
        .map(|r| r.rule)
        .collect();
    assert_eq!(rules, [Some("write".into()), Some("write".into())]);
}

fn test_command(repo: &Path) -> (bool, String) {
    let out = std::process::Command::new("sh")
        .args(["-c", SAMPLE_TEST_COMMAND])
        .current_dir(repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

/// What `borg demo` relies on, without the pipeline: the demo script drives the real CLI
/// through spec, qa and impl on the sample repository, one resumed session, prompts shaped as
/// the pipeline's (the phase line, the title, a relative `Spec file:` line).
#[tokio::test]
async fn real_cli_plays_the_demo_script_red_after_qa_green_after_impl() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let api = ScriptedModel::start(demo_script()).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(root.path()).unwrap();
    let runner = cli(bin, &api);
    let mut session = None;
    for (phase, check) in [("spec", None), ("qa", Some(false)), ("impl", Some(true))] {
        let mut req = request(
            root.path(),
            &format!("Phase: {phase}\nTask: {DEMO_TASK_TITLE}\nSpec file: .borg/task-1/spec.md\n"),
        );
        req.workdir = repo.clone();
        req.resume = session.clone();
        req.allowed_tools = vec!["Read".into(), "Write".into()];
        let outcome = runner.run(req, Progress::default().sink()).await;
        assert_eq!(outcome.error, None, "{phase}: {outcome:?}");
        assert!(
            outcome.text.starts_with("[scripted model"),
            "{phase}: {}",
            outcome.text
        );
        session = outcome.session_id;
        if let Some(green) = check {
            let (passed, out) = test_command(&repo);
            assert_eq!(passed, green, "after {phase}: {out}");
        }
    }
    let spec = std::fs::read_to_string(repo.join(".borg/task-1/spec.md")).unwrap();
    assert!(spec.contains("# Spec: Add a greeting script"), "{spec}");
    assert!(repo.join("tests/greet_test.sh").is_file());
    let rules: Vec<_> = api.requests().into_iter().filter_map(|r| r.rule).collect();
    assert_eq!(rules.len(), 6, "two turns per phase: {rules:?}");
}
