//! Self-update with the real `borg` binary as a child process: the daemon execs into a good
//! build in place, keeps running after a broken one, and `borg run` with `BORG_FALLBACK`
//! execs the previous binary when it cannot start.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{COPY_STAND_IN, STAND_IN, marker, skip, source, wait_for};

/// A `borg run` of the real binary in `root`, with PIPELINE_REPO a git repository `src` whose
/// build command is `build_cmd`; its log goes to `root/borg.log`.
fn daemon(root: &Path, build_cmd: &str) -> Option<(std::process::Child, String)> {
    let (src, _) = source(root, build_cmd);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&src)
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
            .args(["-c", "commit.gpgsign=false", "-c", "safe.directory=*"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(_) = git(&["init", "-q", "-b", "main"]) else {
        skip("git is not installed");
        return None;
    };
    git(&["add", "standin.sh"]).unwrap();
    git(&["commit", "-q", "-m", "v2"]).unwrap();
    let head = git(&["rev-parse", "main"]).unwrap();
    let log = std::fs::File::create(root.join("borg.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_borg"))
        .args(["--dir".as_ref(), root.as_os_str(), "run".as_ref()])
        .env_remove("DATA_DIR")
        .env_remove("LOG_FORMAT")
        .env_remove("BORG_FALLBACK")
        .envs([
            ("RUST_LOG", "info"),
            ("AGENT_SANDBOX", "process"),
            ("AUTO_SEED", "false"),
        ])
        .env("WEB_PORT", free_port().to_string())
        .envs([
            ("PIPELINE_REPO", "src"),
            ("SELF_UPDATE", "true"),
            ("SELF_UPDATE_BINARY", "out/borg"),
        ])
        .env("SELF_UPDATE_BUILD_CMD", build_cmd)
        .env("STANDIN_MARKER", root.join("marker"))
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("control socket", 30, || {
        root.join("data/borg.sock").exists()
    });
    Some((child, head))
}

fn ask(root: &Path, request: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut socket = std::os::unix::net::UnixStream::connect(root.join("data/borg.sock")).unwrap();
    socket.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn a_good_build_replaces_the_running_daemon_in_place() {
    let root = tempfile::tempdir().unwrap();
    let Some((mut child, head)) = daemon(root.path(), COPY_STAND_IN) else {
        return;
    };
    let answer = ask(root.path(), r#"{"cmd":"self_update"}"#);
    assert_eq!(answer["commit"].as_str(), Some(head.as_str()), "{answer}");
    let marker_file = root.path().join("marker");
    wait_for("the new binary", 60, || marker_file.exists());
    let started = marker(&marker_file);
    let _ = child.kill();
    let log = std::fs::read_to_string(root.path().join("borg.log")).unwrap();
    let bin = root.path().join("data/bin");
    assert_eq!(
        started["pid"],
        child.id().to_string(),
        "exec keeps the pid\n{log}"
    );
    assert_eq!(
        started["args"],
        format!("--dir {} run", root.path().display())
    );
    assert_eq!(Path::new(&started["fallback"]), bin.join("borg-previous"));
    assert_eq!(started["from"], env!("CARGO_PKG_VERSION"));
    assert!(log.contains("stopped cleanly; restarting into"), "{log}");
    assert!(
        !root.path().join("data/borg.sock").exists(),
        "the tree stopped in order"
    );
    let running = std::fs::read(env!("CARGO_BIN_EXE_borg")).unwrap();
    assert!(std::fs::read(bin.join("borg-previous")).unwrap() == running);
    assert!(bin.join(format!("borg-{}", &head[..12])).exists());
}

#[test]
fn a_broken_build_leaves_the_daemon_running_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let broken = "echo the compiler says no >&2; exit 1";
    let Some((mut child, head)) = daemon(root.path(), broken) else {
        return;
    };
    assert_eq!(ask(root.path(), r#"{"cmd":"self_update"}"#)["ok"], true);
    let log = || std::fs::read_to_string(root.path().join("borg.log")).unwrap();
    let failed = format!("self-update to {} failed", &head[..12]);
    wait_for("the failure in the log", 30, || log().contains(&failed));
    assert!(log().contains("the compiler says no"), "{}", log());
    let status = ask(root.path(), r#"{"cmd":"status"}"#);
    assert_eq!(status["pid"].as_u64(), Some(u64::from(child.id())));
    assert!(!root.path().join("data/bin").exists());
    assert!(!root.path().join("marker").exists());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "{}", log());
}

#[test]
fn a_new_binary_that_cannot_start_falls_back_to_the_previous_one() {
    // A setting the new binary refuses; a store it cannot open.
    let setups: [fn(&Path); 2] = [
        |dir| std::fs::write(dir.join(".env"), "MAX_CONCURRENT_AGENTS=lots\n").unwrap(),
        |dir| {
            std::fs::create_dir(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/borg.redb"), b"not a database".repeat(100)).unwrap();
        },
    ];
    for (setup, why) in setups
        .into_iter()
        .zip(["MAX_CONCURRENT_AGENTS", "borg.redb"])
    {
        let root = tempfile::tempdir().unwrap();
        setup(root.path());
        let previous = root.path().join("previous.sh");
        std::fs::write(&previous, STAND_IN).unwrap();
        let run = |command: &str| {
            Command::new(env!("CARGO_BIN_EXE_borg"))
                .args(["--dir".as_ref(), root.path().as_os_str(), command.as_ref()])
                .env_remove("DATA_DIR")
                .env("BORG_FALLBACK", &previous)
                .envs([("STANDIN_EXIT", "1"), ("AGENT_SANDBOX", "process")])
                .env("STANDIN_MARKER", root.path().join("marker"))
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&previous, executable).unwrap();
        run("status");
        assert!(
            !root.path().join("marker").exists(),
            "only `run` falls back"
        );
        let out = run("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the previous binary ran: {stderr}");
        assert!(stderr.contains("falling back to"), "{stderr}");
        let started = marker(&root.path().join("marker"));
        assert_eq!(
            started["args"],
            format!("--dir {} run", root.path().display())
        );
        assert_eq!(started["fallback"], "", "no fallback of the fallback");
        assert!(started["reason"].contains(why), "{started:?}");
    }
}

/// A port nobody listens on now, for a daemon's dashboard.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
