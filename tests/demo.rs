//! `borg demo` as a newcomer runs it: the real binary makes a sample repository, starts the
//! daemon with the scripted model, and one task reaches done. Once with plain processes,
//! once in containers (when an engine and the agent image are there).

#[path = "support/claude.rs"]
mod claude;
#[path = "support/docker.rs"]
mod docker;

use std::path::Path;
use std::process::Command;

fn demo(claude: &Path, workdir: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_borg"))
        .args(["demo", "--workdir", workdir.to_str().unwrap()])
        .args(extra)
        .env("CLAUDE_BIN", claude)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .expect("borg demo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_went_through_every_phase(ok: bool, out: &str) {
    assert!(ok, "borg demo failed:\n{out}");
    assert!(
        out.contains("SCRIPTED"),
        "the model is labelled as scripted:\n{out}"
    );
    for step in [
        "backlog → spec",
        "spec → qa",
        "qa → impl",
        "impl → test",
        "test → done",
    ] {
        assert!(out.contains(step), "{step} shown:\n{out}");
    }
    assert!(out.contains("task #1 is done"), "{out}");
    assert!(
        out.contains("spec: Add a greeting script"),
        "the branch is shown:\n{out}"
    );
}

#[test]
fn demo_runs_a_task_to_done_with_processes() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = demo(&claude, dir.path(), &["--no-docker"]);
    assert_went_through_every_phase(ok, &out);
    assert!(out.contains("as plain processes (--no-docker)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_a_task_to_done_in_containers() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    if docker::engine_with_image().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || demo(&claude, &dir, &[])
    })
    .await
    .unwrap();
    assert_went_through_every_phase(ok, &out);
    assert!(out.contains("in hardened containers"), "{out}");
}
