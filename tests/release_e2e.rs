//! The release train as a daemon lives it: the real `borg` binary (agents as processes, the
//! real `claude` CLI driven by the scripted model), a real repository with a bare remote, and
//! SIGKILL at each step of a train. The daemon is frozen at a failpoint (`BORG_FAILPOINT`),
//! killed with SIGKILL there, and started again: `main` is consistent at the kill and after,
//! the task ends merged exactly once, tested, pushed, and nothing of borg's is left behind.

#[path = "support/claude.rs"]
mod claude;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/git.rs"]
mod git_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use borg::demo::{DEMO_TASK_TITLE, SAMPLE_TEST_COMMAND, create_sample_repo, demo_script};
use borg::model::ScriptedModel;
use daemon_support::{Daemon, borg};
use git_support::git;
use serde_json::Value;

fn start(
    dir: &Path,
    repo: &Path,
    claude: &Path,
    model: &ScriptedModel,
    fail: Option<&str>,
) -> Daemon {
    start_with(dir, repo, claude, model, fail, true)
}

fn start_with(
    dir: &Path,
    repo: &Path,
    claude: &Path,
    model: &ScriptedModel,
    fail: Option<&str>,
    continuous: bool,
) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    let mut cmd = borg(dir);
    cmd.arg("run")
        .env("RUST_LOG", "info")
        .env("PIPELINE_REPO", repo)
        .env("PIPELINE_TEST_CMD", SAMPLE_TEST_COMMAND)
        .env("CONTINUOUS_MODE", continuous.to_string())
        .env("AUTO_SEED", "false")
        .env("SELF_UPDATE", "false")
        .env("AGENT_SANDBOX", "process")
        .env("CLAUDE_BIN", claude)
        .env("ANTHROPIC_BASE_URL", model.base_url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(point) = fail {
        cmd.env("BORG_FAILPOINT", point);
    }
    Daemon(cmd.spawn().expect("borg starts"))
}

/// Task 1 as `borg tasks --json` shows it, once the daemon answers.
fn task_one(dir: &Path) -> Option<Value> {
    let out = borg(dir).args(["tasks", "--json"]).output().ok()?;
    let tasks: Value = serde_json::from_slice(&out.stdout).ok()?;
    out.status.success().then(|| tasks[0].clone())
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..900 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 90 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_step_of_a_train_leaves_main_whole_and_merges_once() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    for point in [
        "train:candidate",
        "train:merged",
        "train:tested",
        "train:landed",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
        let bare = dir.path().join("origin.git");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&repo, &["push", "-q", "origin", "main"]);
        let before = git(&repo, &["rev-parse", "main"]);
        let model = ScriptedModel::start(demo_script()).await.unwrap();

        let mut daemon = start(dir.path(), &repo, &claude, &model, Some(point));
        eventually("borg task add", || {
            borg(dir.path())
                .args(["task", "add", DEMO_TASK_TITLE, "--description", "greet.sh"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .await;
        let marker = format!("failpoint {point} reached");
        eventually(&marker, || {
            std::fs::read_to_string(dir.path().join("daemon.log"))
                .is_ok_and(|l| l.contains(&marker))
        })
        .await;
        daemon.0.kill().unwrap(); // SIGKILL, frozen at the step
        let _ = daemon.0.wait();
        drop(daemon);

        // At the kill, main is as it was or fully advanced by the one merge.
        let main = git(&repo, &["rev-parse", "main"]);
        if main != before {
            assert_eq!(point, "train:landed", "main moved before it should have");
            assert_eq!(git(&repo, &["rev-parse", "main^1"]), before);
        }

        let _daemon = start(dir.path(), &repo, &claude, &model, None);
        let mut last = Value::Null;
        eventually("the task merged after the restart", || {
            last = task_one(dir.path()).unwrap_or(Value::Null);
            last["status"] == "merged"
        })
        .await;
        let main = git(&repo, &["rev-parse", "main"]);
        let subjects = git(&repo, &["log", "--format=%s", &format!("{before}..main")]);
        let merges = subjects
            .lines()
            .filter(|s| s.starts_with("Merge task #1"))
            .count();
        assert_eq!(merges, 1, "{point}: {subjects}");
        assert_eq!(git(&repo, &["rev-parse", "main^1"]), before, "{point}");
        assert_eq!(git(&bare, &["rev-parse", "main"]), main, "{point}: pushed");
        let status = Command::new("sh")
            .args(["-c", SAMPLE_TEST_COMMAND])
            .current_dir(&repo)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{point}: main passes its tests");
        let branches = git(&repo, &["branch", "--format=%(refname:short)"]);
        assert_eq!(branches, "main", "{point}: borg's branches are gone");
        assert!(!repo.join(".worktrees/task-1").exists(), "{point}");
        assert!(
            !repo.join(".worktrees/release-candidate").exists(),
            "{point}"
        );
        eprintln!("{point}: killed there, restarted, merged once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borg_release_merges_the_done_tasks_of_a_running_daemon() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
    let before = git(&repo, &["rev-parse", "main"]);
    let model = ScriptedModel::start(demo_script()).await.unwrap();
    let _daemon = start_with(dir.path(), &repo, &claude, &model, None, false);
    eventually("borg task add", || {
        borg(dir.path())
            .args(["task", "add", DEMO_TASK_TITLE, "--description", "greet.sh"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
    eventually("the task done", || {
        task_one(dir.path()).is_some_and(|t| t["status"] == "done")
    })
    .await;
    // Not continuous, and the interval is hours away: only asking releases it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(git(&repo, &["rev-parse", "main"]), before);

    let wrong = borg(dir.path())
        .args(["release", "--repo", "nope"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("no repository is named nope; there are: greeter"),
        "{said}"
    );

    let out = borg(dir.path()).arg("release").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Release #1 of greeter started"), "{said}");
    eventually("the task merged", || {
        task_one(dir.path()).is_some_and(|t| t["status"] == "merged")
    })
    .await;
    assert_eq!(git(&repo, &["rev-parse", "main^1"]), before);
    // Once the train has finished (it reports after telling the task), there is nothing left.
    eventually("a release with nothing queued refused", || {
        let again = borg(dir.path()).arg("release").output().unwrap();
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("nothing is queued")
    })
    .await;
}
