//! The bridge process: started in a process group of its own with a cleared environment plus
//! an allow-list, its stdin fed from the link's command queue, its stdout parsed line by line
//! into events for the actor, its stderr logged (and its tail kept for error messages).
//!
//! Whatever way the owner goes (stop, failure, panic), dropping [`BridgeProcess`] kills the
//! whole process group and ends the three pipe tasks: no bridge outlives its actor.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::protocol::{
    BridgeCommand, BridgeEvent, MAX_LINE_BYTES, Malformed, encode_command, parse_event,
};
use crate::claude::process::{Line, LineReader};

/// Variables a bridge (or npm) may see: enough to find programs, write files and reach the
/// network through a proxy. borg's own settings and secrets are not among them.
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The allowed variables that are set in borg's environment.
pub fn allowed_env() -> impl Iterator<Item = (String, String)> {
    ALLOWED_ENV
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)))
}

/// Kills a process group with SIGKILL when dropped.
pub struct ProcessGroup(Pid);

impl ProcessGroup {
    /// `leader` must have been spawned with `process_group(0)`.
    pub fn new(leader: u32) -> Self {
        ProcessGroup(Pid::from_raw(i32::try_from(leader).unwrap_or(i32::MAX)))
    }

    pub fn kill(&self) {
        match killpg(self.0, Signal::SIGKILL) {
            // Gone already: the normal case after a clean exit.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::error!(pgid = self.0.as_raw(), %err,
                "cannot kill the WhatsApp bridge's process group; processes may be left behind"),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A task aborted when dropped.
pub struct Task(pub JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the bridge's pipes and exit report to the actor, in the order they happened.
pub enum Output {
    Event(BridgeEvent),
    Malformed(Malformed),
    /// The bridge process ended (after every line it wrote was reported, unless something it
    /// left behind holds its stdout open).
    Exited(ExitStatus),
}

/// How to run the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    /// Arguments before `--auth-dir <dir>`, which is always added.
    pub args: Vec<String>,
    pub auth_dir: PathBuf,
    pub cwd: Option<PathBuf>,
}

/// How many stderr lines are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept; Baileys sometimes logs whole protocol nodes.
const MAX_STDERR_LINE: usize = 4096;

/// A running bridge. Dropping it kills the process group and ends the pipe tasks.
pub struct BridgeProcess {
    pid: Option<u32>,
    // The waiter task owns the `Child` (spawned with `kill_on_drop`): aborting it kills the
    // leader, and the group guard everything else.
    _group: ProcessGroup,
    _tasks: [Task; 3],
    /// Kept apart so an exit can wait for the last stderr lines (the reason is usually there).
    stderr: Option<Task>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    exit: watch::Receiver<Option<ExitStatus>>,
}

/// How long an exit waits for stdout's last lines before it is reported anyway: something the
/// bridge started may hold the pipe open for good.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl BridgeProcess {
    /// Starts the bridge. `report` gets every line of its stdout and then its exit;
    /// `commands` is written to its stdin.
    pub fn spawn(
        launch: &Launch,
        commands: mpsc::Receiver<BridgeCommand>,
        report: impl Fn(Output) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .arg("--auth-dir")
            .arg(&launch.auth_dir)
            .env_clear()
            .envs(allowed_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let group = ProcessGroup::new(pid.unwrap_or_default());
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("the bridge's pipes were not opened"));
        };
        let report = Arc::new(report);
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let (drained, drained_rx) = oneshot::channel();
        let (exit_tx, exit) = watch::channel(None);
        let tasks = [
            Task(tokio::spawn(write_commands(stdin, commands))),
            Task(tokio::spawn(read_events(stdout, report.clone(), drained))),
            Task(tokio::spawn(async move {
                let status = child.wait().await;
                // The lines it wrote before exiting come first.
                let _ = tokio::time::timeout(DRAIN_GRACE, drained_rx).await;
                match status {
                    Ok(status) => {
                        exit_tx.send_replace(Some(status));
                        report(Output::Exited(status));
                    }
                    Err(e) => tracing::error!(%e, "cannot wait for the WhatsApp bridge"),
                }
            })),
        ];
        let stderr = Some(Task(tokio::spawn(log_stderr(stderr, stderr_tail.clone()))));
        Ok(BridgeProcess {
            pid,
            _group: group,
            _tasks: tasks,
            stderr,
            stderr_tail,
            exit,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Waits up to `grace` for the bridge to exit by itself and for its stderr to end.
    pub async fn exited_within(&mut self, grace: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + grace;
        let status = tokio::time::timeout_at(deadline, self.exit.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()
            .and_then(|status| *status);
        // Something the bridge left behind may hold stderr open: never wait past the deadline.
        if let Some(stderr) = self.stderr.as_mut()
            && tokio::time::timeout_at(deadline, &mut stderr.0)
                .await
                .is_ok()
        {
            // Finished: a JoinHandle must not be polled again.
            self.stderr = None;
        }
        status
    }

    /// The last lines the bridge wrote to stderr, joined for an error message.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

async fn write_commands(
    mut stdin: tokio::process::ChildStdin,
    mut commands: mpsc::Receiver<BridgeCommand>,
) {
    while let Some(command) = commands.recv().await {
        let line = encode_command(&command);
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            // The bridge is gone; its exit tells the actor.
            tracing::debug!(%e, "the WhatsApp bridge's stdin closed");
            return;
        }
        let _ = stdin.flush().await;
    }
}

async fn read_events(
    stdout: tokio::process::ChildStdout,
    report: Arc<impl Fn(Output)>,
    drained: oneshot::Sender<()>,
) {
    let mut lines = LineReader::new(BufReader::new(stdout), MAX_LINE_BYTES);
    loop {
        match lines.next_line().await {
            Ok(Some(Line::Text(line))) if line.trim().is_empty() => {}
            Ok(Some(Line::Text(line))) => report(match parse_event(&line) {
                Ok(event) => Output::Event(event),
                Err(why) => Output::Malformed(why),
            }),
            Ok(Some(Line::TooLong { bytes })) => report(Output::Malformed(Malformed(format!(
                "a line of {bytes} bytes, over the {MAX_LINE_BYTES}-byte limit"
            )))),
            Ok(None) | Err(_) => break,
        }
    }
    let _ = drained.send(());
}

async fn log_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = LineReader::new(BufReader::new(stderr), MAX_STDERR_LINE);
    while let Ok(Some(line)) = lines.next_line().await {
        let line = match line {
            Line::Text(text) => text,
            Line::TooLong { bytes } => format!("(a stderr line of {bytes} bytes)"),
        };
        if line.trim().is_empty() {
            continue;
        }
        tracing::info!(target: "borg::whatsapp::bridge", "{line}");
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
