//! `ClaudeRunner` as a process manager, proven twice: against `tests/support/fake-claude.sh`
//! (always available: arguments, stdin, environment, timeouts, process-group kills), and
//! against the real `claude` CLI talking to a scripted stand-in for the Anthropic API
//! (`tests/support/fake_anthropic.rs`). The real-CLI tests skip loudly when the CLI is not
//! installed, and fail then under `BORG_TEST_STRICT=1`. Install it with:
//!
//! `npm install --no-save --no-audit --no-fund @anthropic-ai/claude-code@2.1.328`

#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/claude.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actors::agent::{AgentError, AgentProgress, AgentRunner};
use borg::claude::env::{BASE_VARS, FIXED_VARS, RUN_MARKER_VAR};
use borg::claude::{ClaudeConfig, ClaudeRunner};
use fake_anthropic::FakeAnthropic;
use support::{
    Progress, fake_runner, fixture_path, is_alive, live_group_members, read, recorded_pid, request,
    wait_for,
};

#[tokio::test]
async fn prompt_goes_on_stdin_options_on_the_command_line_and_the_stream_is_read() {
    let Some(fixture) = fixture_path("01-tools") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "line one\n\"quoted\" $HOME `x`\n");
    req.resume = Some("abc-123".into());
    req.allowed_tools = vec!["Read".into(), "Write".into()];
    req.system_prompt = Some("- a persona that starts with a dash".into());
    req.max_turns = Some(7);
    let progress = Progress::default();
    let outcome = fake_runner("replay", &[("FAKE_FIXTURE", &fixture)])
        .run(req.clone(), progress.sink())
        .await;

    assert_eq!(outcome.error, None);
    assert_eq!(
        outcome.session_id.as_deref(),
        Some("a46984af-d74d-4b1c-8a17-f8085397b4c8")
    );
    assert_eq!(
        progress.tool_summaries(),
        ["Write hello.txt", "Bash: cat hello.txt && echo listed"]
    );
    assert!(req.home.is_dir(), "HOME was created");
    assert_eq!(
        read(&req.workdir, "prompt.txt"),
        req.prompt,
        "the prompt, byte for byte, then EOF"
    );
    let args: Vec<String> = read(&req.workdir, "args.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        args,
        [
            "--print",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model=claude-sonnet-4-6",
            "--resume=abc-123",
            "--allowedTools=Read,Write",
            "--append-system-prompt=- a persona that starts with a dash",
            "--max-turns=7",
        ]
    );
}

#[tokio::test]
async fn no_result_and_a_nonzero_exit_is_an_exit_error_with_a_bounded_stderr_tail() {
    let root = tempfile::tempdir().unwrap();
    let noise = format!("{}END", "x".repeat(20_000));
    let runner = fake_runner("replay", &[("FAKE_EXIT", "1"), ("FAKE_STDERR", &noise)]);
    let outcome = runner
        .run(request(root.path(), "hi"), Progress::default().sink())
        .await;
    let Some(AgentError::Exit { code, stderr_tail }) = outcome.error else {
        panic!("{:?}", outcome.error)
    };
    assert_eq!(code, Some(1));
    assert!(stderr_tail.ends_with("END\n"), "the end of stderr is kept");
    assert!(
        stderr_tail.len() <= 8 << 10,
        "but only the end: {} bytes",
        stderr_tail.len()
    );
}

#[tokio::test]
async fn the_child_sees_only_the_allow_listed_environment() {
    let root = tempfile::tempdir().unwrap();
    let req = request(root.path(), "hi");
    let outcome = fake_runner("env", &[("EXTRA_ONE", "1")])
        .run(req.clone(), Progress::default().sink())
        .await;
    assert!(
        matches!(outcome.error, Some(AgentError::Protocol(_))),
        "{:?}",
        outcome.error
    );
    let env: Vec<(String, String)> = read(&req.workdir, "env.txt")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    // What sh itself adds, plus what the runner and the test put there on purpose.
    let mut allowed: BTreeSet<&str> = [
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        "HOME",
        "FAKE_MODE",
        "EXTRA_ONE",
    ]
    .into();
    allowed.extend(BASE_VARS);
    allowed.insert(RUN_MARKER_VAR);
    allowed.extend(FIXED_VARS.iter().map(|(k, _)| *k));
    let leaked: Vec<_> = env
        .iter()
        .filter(|(k, _)| !allowed.contains(k.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "variables from borg's environment leaked: {leaked:?}"
    );
    let home = req.home.to_str().unwrap().to_owned();
    for expected in [
        ("HOME", home.as_str()),
        ("DISABLE_AUTOUPDATER", "1"),
        ("EXTRA_ONE", "1"),
    ] {
        assert!(
            env.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {env:?}"
        );
    }
    // The test's own environment has plenty that must not get through (CARGO_*, ...).
    assert!(std::env::vars().any(|(k, _)| !allowed.contains(k.as_str())));
}

#[tokio::test]
async fn silence_hits_the_idle_timeout_and_the_whole_group_dies() {
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "hi");
    req.idle_timeout = Duration::from_secs(1);
    let outcome = fake_runner("idle", &[])
        .run(req.clone(), Progress::default().sink())
        .await;
    assert_eq!(
        outcome.error,
        Some(AgentError::IdleTimeout(Duration::from_secs(1)))
    );
    assert_eq!(
        outcome.session_id.as_deref(),
        Some("fake-session"),
        "kept for a later resume"
    );
    let pgid = recorded_pid(&req.workdir, "pid.txt");
    let background = recorded_pid(&req.workdir, "child.txt");
    assert_ne!(pgid, background);
    assert_eq!(
        live_group_members(pgid),
        Vec::<i32>::new(),
        "the background sleep died too"
    );
    let escaped = recorded_pid(&req.workdir, "escaped.txt");
    assert!(!is_alive(escaped), "so did the one in a session of its own");
}

#[tokio::test]
async fn a_run_that_never_ends_hits_the_hard_timeout() {
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "hi");
    (req.idle_timeout, req.hard_timeout) = (Duration::from_secs(5), Duration::from_secs(1));
    let started = Instant::now();
    let outcome = fake_runner("chatty", &[])
        .run(req.clone(), Progress::default().sink())
        .await;
    assert_eq!(
        outcome.error,
        Some(AgentError::HardTimeout(Duration::from_secs(1)))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped at the hard timeout, not later"
    );
    assert_eq!(
        live_group_members(recorded_pid(&req.workdir, "pid.txt")),
        Vec::<i32>::new()
    );
}

#[tokio::test]
async fn api_retry_lines_count_as_activity() {
    let Some(fixture) = fixture_path("03-text") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "hi");
    req.idle_timeout = Duration::from_millis(1500);
    // 4 retries 0.6 s apart: 2.4 s in all, longer than the idle timeout.
    let runner = fake_runner(
        "retrying",
        &[
            ("FAKE_RETRIES", "4"),
            ("FAKE_PAUSE", "0.6"),
            ("FAKE_FIXTURE", &fixture),
        ],
    );
    let progress = Progress::default();
    let outcome = runner.run(req, progress.sink()).await;
    assert_eq!(outcome.error, None);
    let retries = progress
        .events()
        .into_iter()
        .filter(|p| matches!(p, AgentProgress::Retrying { .. }))
        .count();
    assert_eq!(retries, 4);
}

#[tokio::test]
async fn dropping_the_run_kills_the_whole_group() {
    let root = tempfile::tempdir().unwrap();
    let req = request(root.path(), "hi");
    let runner = fake_runner("idle", &[]);
    let child_file = req.workdir.join("escaped.txt");
    tokio::select! {
        outcome = runner.run(req.clone(), Progress::default().sink()) => panic!("ended by itself: {outcome:?}"),
        () = wait_for("the stand-in to start its background child", || child_file.exists()) => {}
    }
    // The run future is dropped here.
    let pgid = recorded_pid(&req.workdir, "pid.txt");
    let escaped = recorded_pid(&req.workdir, "escaped.txt");
    wait_for("the process group to be gone", || {
        live_group_members(pgid).is_empty()
    })
    .await;
    // Settled from a thread after the drop: give it the same time.
    wait_for("the process in a session of its own to be gone", || {
        !is_alive(escaped)
    })
    .await;
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error_that_says_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let runner = ClaudeRunner::new(ClaudeConfig {
        bin: root.path().join("no-such-claude"),
        ..ClaudeConfig::default()
    });
    let outcome = runner
        .run(request(root.path(), "hi"), Progress::default().sink())
        .await;
    let Some(AgentError::Spawn(why)) = outcome.error else {
        panic!("{:?}", outcome.error)
    };
    assert!(why.contains("CLAUDE_BIN"), "{why}");
}

// ---- the real CLI against the fake API -------------------------------------------------------

fn cli_runner(bin: PathBuf, api: &FakeAnthropic, extra: &[(&str, &str)]) -> ClaudeRunner {
    let mut extra_env = vec![
        ("ANTHROPIC_BASE_URL".to_owned(), api.base_url()),
        ("ANTHROPIC_API_KEY".to_owned(), "sk-test".to_owned()),
    ];
    extra_env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ClaudeRunner::new(ClaudeConfig {
        bin,
        extra_env,
        inherit_model_access: false,
        ..ClaudeConfig::default()
    })
}

#[tokio::test]
async fn real_cli_plain_answer() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "Just answer.\nSAY: The answer is 42.\n");
    req.system_prompt = Some("- persona marker 7f3a".into());
    let progress = Progress::default();
    let outcome = cli_runner(bin, &api, &[]).run(req, progress.sink()).await;

    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.text, "DONE: The answer is 42.");
    assert_eq!(outcome.num_turns, Some(1));
    assert!(outcome.cost_usd.unwrap() > 0.0);
    let session = outcome.session_id.clone().expect("a session id");
    assert_eq!(
        progress.events()[0],
        AgentProgress::Started {
            session_id: session
        }
    );
    let sent = api.message_requests();
    assert_eq!(sent.len(), 1, "one model call");
    assert_eq!(sent[0]["model"], "claude-sonnet-4-6");
    assert!(
        sent[0]["system"]
            .to_string()
            .contains("- persona marker 7f3a"),
        "the persona reached the model"
    );
}

#[tokio::test]
async fn real_cli_write_then_resume_continues_the_session() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let runner = cli_runner(bin, &api, &[]);
    let mut req = request(root.path(), "");
    let file = req.workdir.join("hello.txt");
    req.prompt = format!(
        "Please create the file.\nDO: Write {{\"file_path\": {:?}, \"content\": \"hello world\\n\"}}\nSAY: created\n",
        file.to_str().unwrap()
    );
    req.allowed_tools = vec!["Write".into()];
    let progress = Progress::default();
    let first = runner.run(req.clone(), progress.sink()).await;
    assert_eq!(first.error, None, "{first:?}");
    assert_eq!(first.text, "DONE: created");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "hello world\n",
        "the tool really ran"
    );
    assert_eq!(progress.tool_summaries(), ["Write hello.txt"]);

    req.resume = first.session_id.clone();
    req.prompt = format!(
        "Now change it.\nDO: Edit {{\"file_path\": {:?}, \"old_string\": \"hello world\", \"new_string\": \"hello again\"}}\nSAY: edited\n",
        file.to_str().unwrap()
    );
    req.allowed_tools = vec!["Edit".into()];
    let second = runner.run(req, Progress::default().sink()).await;
    assert_eq!(second.error, None, "{second:?}");
    assert_eq!(
        second.session_id, first.session_id,
        "the same session goes on"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello again\n");
    let last = api.message_requests().pop().unwrap();
    assert!(
        last["messages"]
            .to_string()
            .contains("Please create the file."),
        "the model saw the first run"
    );
}

#[tokio::test]
async fn real_cli_api_500_is_an_api_error() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let progress = Progress::default();
    let runner = cli_runner(bin, &api, &[("CLAUDE_CODE_MAX_RETRIES", "1")]);
    let outcome = runner
        .run(request(root.path(), "Fail.\nFAIL: 500\n"), progress.sink())
        .await;
    let Some(AgentError::Api { status, .. }) = &outcome.error else {
        panic!("{outcome:?}")
    };
    assert_eq!(*status, Some(500));
    assert!(
        progress
            .events()
            .iter()
            .any(|p| matches!(p, AgentProgress::Retrying { .. }))
    );
}

#[tokio::test]
async fn real_cli_stalled_api_hits_the_idle_timeout_and_the_group_dies() {
    let Some(bin) = support::locate_claude() else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut req = request(root.path(), "");
    // The agent leaves a process in the background before the model goes silent: it must
    // die with the run.
    req.prompt = "Hang.\nDO: Bash {\"command\": \"tail -f /dev/null >/dev/null 2>&1 & echo $! > bg.pid\"}\nSTALL\n".into();
    req.allowed_tools = vec!["Bash".into()];
    req.idle_timeout = Duration::from_secs(3);
    let runner = cli_runner(bin, &api, &[]);
    let workdir = req.workdir.clone();
    let probe = async {
        wait_for("the second model call", || {
            api.message_requests().len() == 2
        })
        .await;
        let leaders = support::our_children_in(&workdir);
        assert_eq!(leaders.len(), 1, "one claude process: {leaders:?}");
        leaders[0]
    };
    let (outcome, pgid) = tokio::join!(runner.run(req, Progress::default().sink()), probe);
    assert_eq!(
        outcome.error,
        Some(AgentError::IdleTimeout(Duration::from_secs(3)))
    );
    assert!(outcome.session_id.is_some());
    assert_eq!(live_group_members(pgid), Vec::<i32>::new());
    // Claude Code runs Bash commands in a session of their own: not in claude's group.
    let background = recorded_pid(&workdir, "bg.pid");
    assert!(
        !is_alive(background),
        "the agent's background process died with the run"
    );
}
