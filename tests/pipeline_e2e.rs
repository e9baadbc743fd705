//! The pipeline as a user meets it: the real `borg` binary, a chat on a fake Telegram Bot
//! API (through the real teloxide client), the real `claude` CLI inside real hardened
//! containers of the agent image, driven by the scripted model on 127.0.0.1, and a real git
//! repository. `/task` in the chat creates a task; it goes spec → qa → impl → test → done
//! with real commits, its phase changes are reported in the chat, and nothing is left
//! behind. The CLI (`borg tasks`, `borg task show`) sees the same task.

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/git.rs"]
mod git_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use borg::demo::{DEMO_TASK_TITLE, SAMPLE_TEST_COMMAND, create_sample_repo, demo_script};
use borg::model::ScriptedModel;
use daemon_support::{Daemon, borg};
use fake_telegram::{BOT_USERNAME, FakeTelegram};
use git_support::git;
use serde_json::Value;

const TOKEN: &str = "4343:pipeline-token";
const GROUP: i64 = -100_888;
const ADMIN: i64 = 42;

fn message(id: i64, from: i64, text: &str) -> Value {
    fake_telegram::group_message(GROUP, id, from, text)
}

/// Whether the sample's test command passes at `commit` (checked out afresh).
fn tests_pass_at(repo: &Path, commit: &str, scratch: &Path) -> bool {
    let dir = scratch.join(&commit[..10]);
    git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            dir.to_str().unwrap(),
            commit,
        ],
    );
    let passed = Command::new("sh")
        .args(["-c", SAMPLE_TEST_COMMAND])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    git(
        repo,
        &["worktree", "remove", "--force", dir.to_str().unwrap()],
    );
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_from_chat_goes_through_every_phase_in_real_containers() {
    let Some(engine) = docker::engine_with_image().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
    let telegram = FakeTelegram::start(TOKEN).await;
    let model = ScriptedModel::start(demo_script()).await.unwrap();
    let world = daemon_support::PipelineWorld {
        token: TOKEN,
        telegram_url: &telegram.url,
        admin: ADMIN,
        group: GROUP,
        repo: &repo,
        model_url: &model.base_url(),
    };
    let child = daemon_support::containerized_pipeline(dir.path(), &world)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("borg starts");
    let daemon = Daemon(child);

    telegram.push_update(message(1, ADMIN, "/register"));
    telegram
        .wait_for_text("registration", Duration::from_secs(30), "Registered")
        .await;
    let task = format!("/task {DEMO_TASK_TITLE}\nAdd greet.sh, which prints a greeting.");
    telegram.push_update(message(2, ADMIN, &task));
    telegram
        .wait_for_text("task created", Duration::from_secs(30), "Task #1 created")
        .await;
    telegram
        .wait_for_text("task done", Duration::from_secs(300), "test → done")
        .await;

    // Every phase change was reported in the chat (the admin chat and the origin: once).
    let reports: Vec<String> = telegram
        .texts()
        .into_iter()
        .filter(|t| t.starts_with("Task #1"))
        .collect();
    for step in [
        "backlog → spec",
        "spec → qa",
        "qa → impl",
        "impl → test",
        "test → done",
    ] {
        let n = reports.iter().filter(|r| r.contains(step)).count();
        assert_eq!(n, 1, "{step} reported once: {reports:#?}");
    }

    // Real commits on the branch; the QA tests were red before the implementation and green
    // after it.
    let log = git(&repo, &["log", "--format=%H %s", "main..borg/task-1"]);
    let commits: Vec<(&str, &str)> = log.lines().filter_map(|l| l.split_once(' ')).collect();
    let subjects: Vec<&str> = commits.iter().map(|c| c.1).collect();
    assert_eq!(
        subjects,
        [
            format!("impl: {DEMO_TASK_TITLE} (attempt 1)"),
            format!("tests: {DEMO_TASK_TITLE}"),
            format!("spec: {DEMO_TASK_TITLE}"),
        ]
    );
    let scratch = tempfile::tempdir().unwrap();
    assert!(
        !tests_pass_at(&repo, commits[1].0, scratch.path()),
        "red at the QA commit"
    );
    assert!(
        tests_pass_at(&repo, commits[0].0, scratch.path()),
        "green at the head"
    );

    // Chat agents run in the sandbox too.
    telegram.push_update(message(
        3,
        7,
        &format!("@{BOT_USERNAME} hi\nSAY: from a container"),
    ));
    telegram
        .wait_for_text(
            "chat answer",
            Duration::from_secs(120),
            "DONE: from a container",
        )
        .await;

    // The CLI sees the same task.
    let out = borg(dir.path()).args(["tasks", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tasks[0]["status"], "done", "{tasks}");
    let out = borg(dir.path())
        .args(["task", "show", "1"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("status      done") && shown.contains("test → done"),
        "{shown}"
    );

    // An admin releases it from the chat: the train merges it into main after testing the
    // merge in a container, and the digest comes to the admin chat.
    let main_before = git(&repo, &["rev-parse", "main"]);
    telegram.push_update(message(4, ADMIN, "/release"));
    telegram
        .wait_for_text("digest", Duration::from_secs(120), "merged #1")
        .await;
    let digest = telegram
        .texts()
        .into_iter()
        .find(|t| t.starts_with("Release #1 of ") && t.contains("merged #1"))
        .expect("a digest");
    assert!(digest.contains(": main is now"), "{digest}");
    assert_eq!(git(&repo, &["rev-parse", "main^1"]), main_before);
    let main = git(&repo, &["rev-parse", "main"]);
    assert!(tests_pass_at(&repo, &main, scratch.path()), "green on main");
    let tasks: Value = serde_json::from_slice(
        &borg(dir.path())
            .args(["tasks", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(tasks[0]["status"], "merged", "{tasks}");

    // Every agent and test container was removed.
    assert!(docker::containers_of(&engine, "task-1").await.is_empty());
    let train = format!("train-{}", repo.file_name().unwrap().to_string_lossy());
    assert!(docker::containers_of(&engine, &train).await.is_empty());
    drop(daemon);
}

#[path = "support/claude.rs"]
mod claude;

/// `borg tasks --json` of the daemon in `dir`, once it answers.
fn tasks(dir: &Path) -> Option<Value> {
    let out = borg(dir).args(["tasks", "--json"]).output().ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn start_plain(dir: &Path, repo: &Path, claude: &Path, model: &ScriptedModel) -> Daemon {
    let child = borg(dir)
        .arg("run")
        .env("RUST_LOG", "info")
        .env("PIPELINE_REPO", repo)
        .env("PIPELINE_TEST_CMD", SAMPLE_TEST_COMMAND)
        .env("AGENT_SANDBOX", "process")
        .env("CLAUDE_BIN", claude)
        .env("ANTHROPIC_BASE_URL", model.base_url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("borg starts");
    Daemon(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_task_then_restart_finishes_it_without_redoing_finished_phases() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
    let model = ScriptedModel::start(demo_script()).await.unwrap();
    let mut daemon = start_plain(dir.path(), &repo, &claude, &model);
    // Created through the CLI, like a user would.
    let mut created = false;
    for _ in 0..200 {
        let out = borg(dir.path())
            .args(["task", "add", DEMO_TASK_TITLE, "--description", "greet.sh"])
            .output()
            .unwrap();
        if out.status.success() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "borg task add never succeeded");
    // Killed as soon as the spec phase has finished, while the next phase works.
    let mut status = String::new();
    for _ in 0..600 {
        if let Some(t) = tasks(dir.path()) {
            status = t[0]["status"].as_str().unwrap_or("").to_owned();
            if status != "backlog" && status != "spec" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.0.kill().unwrap(); // SIGKILL
    let _ = daemon.0.wait();
    eprintln!("killed with the task in {status}");
    let _daemon = start_plain(dir.path(), &repo, &claude, &model);
    let mut last = Value::Null;
    for _ in 0..600 {
        if let Some(t) = tasks(dir.path()) {
            last = t[0].clone();
            if last["status"] == "done" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "done", "{last}");
    // One commit per phase: nothing finished before the kill was done again.
    let log = git(&repo, &["log", "--format=%s", "main..borg/task-1"]);
    assert_eq!(log.lines().count(), 3, "{log}");
    // Requests answered by the spec rule: the CLI asks twice per Write (the tool call, then
    // the final answer). Had the finished spec phase run again after the restart, there
    // would be more.
    let spec_requests = model
        .requests()
        .iter()
        .filter(|r| r.rule.as_deref() == Some("demo spec"))
        .count();
    let rules: Vec<_> = model.requests().into_iter().map(|r| r.rule).collect();
    assert_eq!(
        spec_requests, 2,
        "the finished spec phase ran again: {rules:?}"
    );
}
