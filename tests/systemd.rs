//! borg as a systemd `Type=notify` service, against a fake service manager: a datagram socket
//! in a temporary directory named by `NOTIFY_SOCKET`, as systemd would pass it.
//!
//! The real binary reports `READY=1` only once its tree is up, pings the watchdog at half of
//! `WATCHDOG_USEC` (and only when `WATCHDOG_PID` is its own), and says `STOPPING=1` on SIGTERM.
//! In-process, a root supervisor that is stuck in a handler stops the pings.

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/git.rs"]
mod git_support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use borg::systemd::{self, Notifier};
use daemon_support::{Daemon, free_port};
use git_support::{git_succeeds, skip};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::{ChildSpec, Introspection, SupervisorRef, SupervisorSpec};
use tokio::sync::Notify;

/// The fake service manager's end: the socket borg sends to.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Manager {
    fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self { socket, path }
    }

    /// The next datagram within `timeout`, as text.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => None,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => None,
            Err(e) => panic!("receiving a notice: {e}"),
        }
    }

    /// The next datagram other than watchdog pings, within `timeout`.
    fn recv_not_ping(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = self.recv(left.max(Duration::from_millis(1)))?;
            if message != "WATCHDOG=1\n" {
                return Some(message);
            }
        }
    }
}

fn lines(message: &str) -> Vec<&str> {
    assert!(message.ends_with('\n'), "{message:?} ends with a newline");
    message.lines().collect()
}

/// `borg run` in `dir` with a fresh environment of our own (no developer settings, no real
/// systemd variables), its log in `dir/stderr.log`.
fn daemon(dir: &Path, manager: &Manager, extra: &[(&str, &str)], wrap_pid: bool) -> Daemon {
    let bin = env!("CARGO_BIN_EXE_borg");
    let mut cmd = if wrap_pid {
        // systemd sets WATCHDOG_PID to the main process: a shell that execs borg knows it.
        let mut sh = Command::new("sh");
        sh.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\"", bin]);
        sh
    } else {
        Command::new(bin)
    };
    cmd.current_dir(dir)
        .arg("--dir")
        .arg(dir)
        .arg("run")
        .env_remove("DATA_DIR")
        .env_remove("LOG_FORMAT")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", &manager.path)
        .env("RUST_LOG", "info")
        // Daemons of parallel tests must not compete for the dashboard's port.
        .env("WEB_PORT", free_port().to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    for (name, value) in extra {
        cmd.env(name, value);
    }
    Daemon(cmd.spawn().unwrap())
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap()
}

fn sigterm(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

fn wait_exit(child: &mut Child, dir: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not exit: {}",
            log(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `STOPPING=1` on SIGTERM, then a clean exit.
fn stops_on_sigterm(Daemon(child): &mut Daemon, dir: &Path, manager: &Manager) {
    sigterm(child);
    let stopping = manager
        .recv_not_ping(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no STOPPING=1 after SIGTERM: {}", log(dir)));
    assert_eq!(lines(&stopping)[0], "STOPPING=1", "{stopping:?}");
    assert_eq!(wait_exit(child, dir), 0, "{}", log(dir));
    assert!(log(dir).contains("stopped cleanly"), "{}", log(dir));
}

#[test]
fn ready_comes_once_the_tree_is_up_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(dir.path());
    // A watchdog meant for another process (pid 1): borg must not ping it.
    let mut child = daemon(
        dir.path(),
        &manager,
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
        false,
    );

    let ready = manager
        .recv(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", log(dir.path())));
    // Checked the instant READY arrives: what came before it is there already. The log line
    // that the tree is up was written (to a file, synchronously) before READY was sent, and
    // the control socket, the tree's last child, answers at the first try.
    let log_at_ready = log(dir.path());
    let socket = dir.path().join("data/borg.sock");
    let connected = std::os::unix::net::UnixStream::connect(&socket);
    let lines = lines(&ready);
    assert_eq!(
        lines[0], "READY=1",
        "the first notice is READY=1: {ready:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=borg ") && l.ends_with(" actors")),
        "{ready:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("WATCHDOG_USEC=")),
        "the watchdog is another process's: {ready:?}"
    );
    assert!(
        log_at_ready
            .lines()
            .any(|l| l.contains("borg ") && l.contains(" running")),
        "READY=1 came before the log said the tree is up:\n{log_at_ready}"
    );
    assert!(
        connected.is_ok(),
        "READY=1 came before the control socket was up: {connected:?}"
    );
    drop(connected);

    let out = Command::new(env!("CARGO_BIN_EXE_borg"))
        .current_dir(dir.path())
        .args(["--dir", dir.path().to_str().unwrap(), "status", "--json"])
        .env_remove("DATA_DIR")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = report["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    for path in [
        "root",
        "root/store",
        "root/chat",
        "root/pipeline",
        "root/control",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }

    assert_eq!(
        manager.recv(Duration::from_millis(500)),
        None,
        "no ping for a watchdog meant for another process"
    );
    stops_on_sigterm(&mut child, dir.path(), &manager);
}

#[test]
fn the_root_supervisor_pings_the_watchdog_every_half_interval() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(dir.path());
    let mut child = daemon(dir.path(), &manager, &[("WATCHDOG_USEC", "200000")], true);

    let ready = manager
        .recv(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", log(dir.path())));
    let ready_lines = lines(&ready);
    assert_eq!(ready_lines[0], "READY=1", "{ready:?}");
    assert!(
        ready_lines.contains(&"WATCHDOG_USEC=200000"),
        "READY=1 restores the unit's watchdog timeout: {ready:?}"
    );

    // 2 s at one ping per 100 ms: about 20.
    let start = Instant::now();
    let mut pings = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        match manager.recv(Duration::from_millis(500)) {
            Some(message) => {
                assert_eq!(message, "WATCHDOG=1\n", "only pings while running");
                pings.push(Instant::now());
            }
            None => panic!(
                "no ping for 500 ms after {} pings: {}",
                pings.len(),
                log(dir.path())
            ),
        }
    }
    assert!(
        (10..=30).contains(&pings.len()),
        "{} pings in 2 s at a 100 ms interval",
        pings.len()
    );
    let longest = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    // The watchdog's timeout is 200 ms; a ping every 100 ms leaves room for a loaded machine.
    assert!(longest < Duration::from_millis(300), "a gap of {longest:?}");
    stops_on_sigterm(&mut child, dir.path(), &manager);
}

/// Sends one request to the control socket and returns the answer.
fn ask(dir: &Path, request: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut socket = std::os::unix::net::UnixStream::connect(dir.join("data/borg.sock")).unwrap();
    socket.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn a_self_update_reloads_in_place_and_is_ready_again() {
    let dir = tempfile::tempdir().unwrap();
    // borg's "source": a git repository whose build copies this very binary, so the daemon
    // re-execs into a real borg that reports to the same manager.
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("README"), "stand-in source\n").unwrap();
    if !git_succeeds(&src, &["init", "-q", "-b", "main"]) {
        skip("git is not installed");
        return;
    }
    assert!(
        git_succeeds(&src, &["add", "README"]) && git_succeeds(&src, &["commit", "-q", "-m", "v2"])
    );
    let build = format!(
        "mkdir -p out && cp '{}' out/borg",
        env!("CARGO_BIN_EXE_borg")
    );
    let manager = Manager::new(dir.path());
    let mut child = daemon(
        dir.path(),
        &manager,
        &[
            ("WATCHDOG_USEC", "200000"),
            ("AGENT_SANDBOX", "process"),
            ("AUTO_SEED", "false"),
            ("PIPELINE_REPO", "src"),
            ("SELF_UPDATE", "true"),
            ("SELF_UPDATE_BINARY", "out/borg"),
            ("SELF_UPDATE_BUILD_CMD", build.as_str()),
        ],
        true,
    );
    let first = manager
        .recv_not_ping(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", log(dir.path())));
    assert_eq!(lines(&first)[0], "READY=1", "{first:?}");

    let answer = ask(dir.path(), r#"{"cmd":"self_update"}"#);
    assert!(answer["commit"].is_string(), "{answer}");
    let reloading = manager
        .recv_not_ping(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no RELOADING=1: {}", log(dir.path())));
    let reloading = lines(&reloading);
    assert_eq!(
        reloading[0], "RELOADING=1",
        "not STOPPING=1: the process stays: {reloading:?}"
    );
    // Stretched over the shutdown (BORG_SHUTDOWN_TIMEOUT_S, 30 s) and the new start (60 s).
    assert!(
        reloading.contains(&"WATCHDOG_USEC=90000000"),
        "{reloading:?}"
    );

    let again = manager
        .recv_not_ping(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no READY=1 after the re-exec: {}", log(dir.path())));
    let again = lines(&again);
    assert_eq!(again[0], "READY=1", "{again:?}");
    assert!(
        again.contains(&"WATCHDOG_USEC=200000"),
        "the unit's watchdog is back: {again:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            manager.recv(Duration::from_secs(2)).as_deref(),
            Some("WATCHDOG=1\n"),
            "the new binary's root supervisor pings"
        );
    }
    let log_now = log(dir.path());
    assert!(
        log_now.contains("stopped cleanly; restarting into"),
        "{log_now}"
    );
    assert!(log_now.contains("borg updated from"), "{log_now}");
    stops_on_sigterm(&mut child, dir.path(), &manager);
}

/// Blocks in `pre_start` until `open` is notified, after notifying `entered`: a child whose
/// start does not return, which holds its supervisor's handler (starting awaits `pre_start`).
struct StuckStart;

impl Actor for StuckStart {
    type Msg = ();
    type State = ();
    type Arguments = (Arc<Notify>, Arc<Notify>);

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        (entered, open): (Arc<Notify>, Arc<Notify>),
    ) -> Result<(), ActorProcessingErr> {
        entered.notify_one();
        open.notified().await;
        Ok(())
    }
}

/// An ordinary child.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// Every datagram waiting now.
fn drain(socket: &tokio::net::UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.try_recv(&mut buf) {
        out.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    out
}

async fn next(socket: &tokio::net::UnixDatagram, within: Duration) -> Option<String> {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(within, socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(String::from_utf8(buf[..n].to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_root_supervisor_stops_the_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let manager = tokio::net::UnixDatagram::bind(&path).unwrap();
    let notifier = Arc::new(Notifier::connect(path.to_str().unwrap()).unwrap());
    let spec = SupervisorSpec {
        children: vec![ChildSpec::actor("worker", || (Idle, ()))],
        ..SupervisorSpec::default()
    };
    let (root, join) = SupervisorRef::spawn_root("root", spec, Introspection::new())
        .await
        .unwrap();
    let timeout = Duration::from_millis(200);
    systemd::ready_with_watchdog(Some(&notifier), &root, "up", Some(timeout));

    let ready = next(&manager, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ready, "READY=1\nSTATUS=up\nWATCHDOG_USEC=200000\n");
    for _ in 0..3 {
        let ping = next(&manager, Duration::from_secs(2)).await;
        assert_eq!(ping.as_deref(), Some("WATCHDOG=1\n"));
    }

    // Wedge the root: a dynamic child whose start never returns holds its handler.
    let (entered, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let starting = {
        let (root, entered, open) = (root.clone(), entered.clone(), open.clone());
        tokio::spawn(async move {
            let spec = ChildSpec::actor("stuck", move || {
                (StuckStart, (entered.clone(), open.clone()))
            });
            root.start_child(spec).await
        })
    };
    entered.notified().await;
    drain(&manager); // pings sent before the wedge
    tokio::time::sleep(timeout * 3).await;
    assert_eq!(
        drain(&manager),
        Vec::<String>::new(),
        "no ping while the root supervisor is stuck: systemd restarts the daemon"
    );

    // Unstuck, it pings again.
    open.notify_one();
    starting
        .await
        .unwrap()
        .expect("the child starts in the end");
    let ping = next(&manager, Duration::from_secs(2)).await;
    assert_eq!(ping.as_deref(), Some("WATCHDOG=1\n"));

    root.shutdown().await;
    join.await.unwrap();
    drain(&manager);
    tokio::time::sleep(timeout * 2).await;
    assert!(drain(&manager).is_empty(), "no ping after the root stopped");
}
