//! The `borg` binary as a user runs it: start, status, clean shutdown on a signal, and refusals
//! that stop startup with a clear message.

#[path = "support/daemon.rs"]
mod daemon_support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn borg(dir: &Path) -> Command {
    let mut cmd = daemon_support::borg_inheriting_env(dir);
    // A developer's own settings must not leak into the test.
    cmd.env_remove("DATA_DIR")
        .env_remove("LOG_FORMAT")
        .env("RUST_LOG", "info");
    cmd
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn run_serves_status_and_stops_cleanly_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = borg(dir.path())
            .arg("run")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let socket = dir.path().join("data/borg.sock");
        wait_for("control socket", || socket.exists());

        let out = borg(dir.path())
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let paths: Vec<&str> = report["actors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap())
            .collect();
        // No chat platform is configured, so the router has nothing to route and stays off;
        // no repository either, so the pipeline is only its desk.
        assert_eq!(
            paths,
            [
                "root",
                "root/agent-slots",
                "root/chat",
                "root/chat/groups",
                "root/control",
                "root/pipeline",
                "root/pipeline/desk",
                "root/store",
                "root/web"
            ]
        );
        assert_eq!(report["pid"].as_u64(), Some(u64::from(child.id())));

        signal(&child, sig);
        let (code, stderr) = wait_exit(&mut child);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("stopped cleanly"), "{stderr}");
        assert!(!socket.exists(), "socket removed on shutdown");

        // With no daemon, status reads the store itself.
        let out = borg(dir.path()).arg("status").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("not running"), "{text}");
    }
}

#[test]
fn a_bad_setting_exits_2_naming_variable_value_and_allowed_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "MAX_CONCURRENT_AGENTS=lots\n").unwrap();
    let out = borg(dir.path()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("MAX_CONCURRENT_AGENTS"), "{stderr}");
    assert!(stderr.contains("lots"), "{stderr}");
    assert!(stderr.contains("1 to 64"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing created on a refused start"
    );
}

#[test]
fn a_data_file_that_is_not_a_borg_store_stops_startup_and_stays_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let file = dir.path().join("data/borg.redb");
    let bytes = b"my precious notes, not a database\n".repeat(100);
    std::fs::write(&file, &bytes).unwrap();
    let out = borg(dir.path()).arg("run").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("borg.redb"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = borg(dir.path())
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("first daemon", || {
        dir.path().join("data/borg.sock").exists()
    });
    let out = borg(dir.path()).arg("run").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("another borg"), "{stderr}");
    signal(&first, "TERM");
    assert_eq!(wait_exit(&mut first).0, 0);
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = borg(dir.path()).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("borg {}", env!("CARGO_PKG_VERSION"))
    );
}
