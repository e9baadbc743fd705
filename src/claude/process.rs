//! Process plumbing for a claude run (and for test commands, which reuse it): a bounded line
//! reader for stdout, bounded output tails, and the guard that kills every process the run
//! started.
//!
//! Lessons from the original borg (anchor notes §4.1) shape all three: stdout and stderr are
//! drained at the same time (reading one to the end first deadlocks once the other pipe
//! fills), neither may grow without bound (an agent can `cat` a 2 GB file), and a timeout
//! must kill everything the run started, not just the `claude` process (its Bash tool's
//! children would otherwise live on).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::env::RUN_MARKER_VAR;

/// Longest stdout line kept. Real events are a few KiB; a tool result echoing a huge file
/// could be larger, and is dropped (counted as skipped) rather than buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// How much of stderr is kept: its end, where the reason for a failure usually is.
pub const STDERR_TAIL_BYTES: usize = 8 << 10;

/// One line read by [`LineReader`].
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A line, newline (and a `\r` before it) removed, invalid UTF-8 replaced.
    Text(String),
    /// A line longer than the limit, dropped while it streamed by; `bytes` is its length.
    TooLong { bytes: usize },
}

/// Splits a byte stream into lines holding at most `max` bytes of one line in memory.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    /// Bytes of the current line seen so far once it went over `max`.
    overflow: Option<usize>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
            overflow: None,
        }
    }

    /// The next line, or `None` at the end of the stream.
    ///
    /// Cancel-safe, which the runner's `select!` relies on: all state lives in `self`, and
    /// bytes are consumed from the inner reader only after they were moved into it.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                // The end of the stream also ends an unterminated last line.
                if let Some(bytes) = self.overflow.take() {
                    return Ok(Some(Line::TooLong { bytes }));
                }
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take_line()));
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let piece = &chunk[..newline.unwrap_or(chunk.len())];
            match &mut self.overflow {
                Some(seen) => *seen += piece.len(),
                None if self.buf.len() + piece.len() > self.max => {
                    self.overflow = Some(self.buf.len() + piece.len());
                    // Drop the allocation too, not only the contents.
                    self.buf = Vec::new();
                }
                None => self.buf.extend_from_slice(piece),
            }
            let consumed = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(consumed);
            if newline.is_some() {
                return Ok(Some(match self.overflow.take() {
                    Some(bytes) => Line::TooLong { bytes },
                    None => self.take_line(),
                }));
            }
        }
    }

    fn take_line(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.buf);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Line::Text(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// The last `capacity` bytes of one or more output streams, shared, so the tail can be read
/// at any moment: also while a reader task is still blocked on a pipe that a stray grandchild
/// holds open. Several sources may feed one tail (a test command's stdout and stderr,
/// interleaved as the chunks arrive).
#[derive(Clone)]
pub struct OutputTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl OutputTail {
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(64 << 10)))),
            capacity,
        }
    }

    /// Appends `chunk`, forgetting what falls out of the capacity.
    pub fn push(&self, chunk: &[u8]) {
        let mut tail = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        // Only the end of a huge chunk can survive; skip copying the rest in.
        let chunk = &chunk[chunk.len().saturating_sub(self.capacity)..];
        tail.extend(chunk);
        let excess = tail.len().saturating_sub(self.capacity);
        tail.drain(..excess);
    }

    /// Feeds the tail from `stream` until it ends, from a background task.
    pub fn follow(&self, mut stream: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                sink.push(&chunk[..n]);
            }
        })
    }

    /// What is kept, as text (invalid UTF-8, such as a character cut at the start, replaced).
    pub fn text(&self) -> String {
        let tail = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a process's stderr, collected by a background task.
pub struct StderrTail {
    tail: OutputTail,
    task: JoinHandle<()>,
}

impl StderrTail {
    pub fn spawn(stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let tail = OutputTail::new(STDERR_TAIL_BYTES);
        let task = tail.follow(stream);
        Self { tail, task }
    }

    /// Waits up to `grace` for the stream to end, then returns what was kept.
    pub async fn finish(self, grace: std::time::Duration) -> String {
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
        self.tail.text()
    }
}

/// Everything one run started, killed with SIGKILL by [`RunProcesses::kill`] and again on
/// drop, so no path out of a run (return, timeout, panic, the caller dropping the future)
/// leaves any of it behind.
///
/// Two nets, because one is not enough: the CLI's own process group (it is spawned with
/// `process_group(0)`), and a sweep of `/proc` for processes whose environment carries the
/// run's [`RUN_MARKER_VAR`]. The sweep is needed because Claude Code runs each Bash tool
/// command in a session of its own: `cmd &` left behind by the agent is in neither claude's
/// group nor its tree (it is reparented to init), and only the inherited variable still ties
/// it to the run. A process that clears its own environment escapes both; containers are
/// the complete answer to that.
pub struct RunProcesses {
    pgid: Pid,
    /// The `NAME=value` entry that marks the run's processes.
    marker: String,
    /// Set by [`Self::kill_and_settle`]: nothing is left for `Drop` to do.
    settled: bool,
}

impl RunProcesses {
    /// A value for [`RUN_MARKER_VAR`] that no other run, of this daemon or an earlier one,
    /// has used.
    pub fn new_marker() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{}-{nanos}-{n}", std::process::id())
    }

    /// `leader` must have been spawned with `process_group(0)` (so its pid is the group id)
    /// and with `RUN_MARKER_VAR=marker` in its environment.
    pub fn new(leader: u32, marker: &str) -> Self {
        let pgid = i32::try_from(leader).expect("pids fit in i32");
        Self {
            pgid: Pid::from_raw(pgid),
            marker: format!("{RUN_MARKER_VAR}={marker}"),
            settled: false,
        }
    }

    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// SIGKILL to the group, then to every marked process until a sweep finds none (a
    /// process may fork while it is being looked for). Returns how many marked processes
    /// it found. `/proc` lives in memory, so this is quick enough for an async worker and
    /// for `Drop`.
    pub fn kill(&self) -> usize {
        match killpg(self.pgid, Signal::SIGKILL) {
            // An empty group is the normal case after a clean exit.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::error!(pgid = self.pgid.as_raw(), %err,
                "cannot kill claude's process group; processes may be left behind"),
        }
        sweep(&self.marker)
    }

    /// [`Self::kill`], then sweeps again after short pauses until one finds nothing. A
    /// process caught in the middle of `execve` shows an empty environment for an instant
    /// and slips through a single sweep; when this returns, it has been caught too.
    pub async fn kill_and_settle(mut self) {
        self.kill();
        for _ in 0..SETTLE_ROUNDS {
            tokio::time::sleep(SETTLE_PAUSE).await;
            if sweep(&self.marker) == 0 {
                break;
            }
        }
        self.settled = true;
    }
}

/// Pause between the sweeps of [`RunProcesses::kill_and_settle`], and how many at most.
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
const SETTLE_ROUNDS: usize = 10;

impl Drop for RunProcesses {
    /// The caller dropped the run (or it panicked): kill now, and settle from a short-lived
    /// thread, since `Drop` cannot wait.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.kill();
        let marker = std::mem::take(&mut self.marker);
        std::thread::spawn(move || {
            for _ in 0..SETTLE_ROUNDS {
                std::thread::sleep(SETTLE_PAUSE);
                if sweep(&marker) == 0 {
                    break;
                }
            }
        });
    }
}

/// The variable that marks every agent process of one daemon instance (one `DATA_DIR`), so a
/// restarted daemon can find what its killed predecessor left running.
pub const INSTANCE_VAR: &str = "BORG_INSTANCE";

/// A stable id for the daemon instance of `data_dir`.
pub fn instance_id(data_dir: &std::path::Path) -> String {
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// Kills every process carrying `INSTANCE_VAR=instance`: at startup, what a killed daemon of
/// this instance left running (an agent would otherwise go on editing a worktree beside its
/// successor). Returns how many it found.
pub fn kill_instance_leftovers(instance: &str) -> usize {
    sweep(&format!("{INSTANCE_VAR}={instance}"))
}

/// SIGKILLs marked processes until a pass finds none; returns how many it found.
fn sweep(marker: &str) -> usize {
    // Distinct pids: a killed process can still show up in the next pass until it is dead.
    let mut found = std::collections::HashSet::new();
    for _ in 0..10 {
        let marked = marked_processes(marker);
        if marked.is_empty() {
            return found.len();
        }
        found.extend(marked.iter().map(|p| p.as_raw()));
        for pid in marked {
            tracing::info!(pid = pid.as_raw(), "killing a process a run left behind");
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    tracing::error!(%marker, "processes of a run keep appearing");
    found.len()
}

/// Live processes whose initial environment holds `entry` (zombies show an empty one).
/// Off Linux there is no `/proc` and the result is empty: the process group is all there is.
fn marked_processes(entry: &str) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
        })
        .map(Pid::from_raw)
        .collect()
}

#[cfg(test)]
mod leftover_tests {
    use super::*;

    #[test]
    fn leftovers_of_an_instance_are_killed_and_others_are_not() {
        let spawn = |instance: &str| {
            std::process::Command::new("sleep")
                .arg("30")
                .env(INSTANCE_VAR, instance)
                .spawn()
                .unwrap()
        };
        let mut mine = spawn("test-mine-4711");
        let mut other = spawn("test-other-4711");
        // The child's environment is visible once it has exec'd, which a loaded machine may
        // take a while to get to.
        let mut killed = 0;
        for _ in 0..200 {
            killed = kill_instance_leftovers("test-mine-4711");
            if killed > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert_eq!(killed, 1);
        assert!(mine.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(
            other.try_wait().unwrap().is_none(),
            "another instance's process lives"
        );
        other.kill().unwrap();
        let _ = other.wait();
    }
}
