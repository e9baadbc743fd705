//! Watching one claude run, wherever it runs: stdout lines into the [`StreamAccumulator`] and
//! out as progress, until the run has exited and its stdout has ended, or a timeout fires.
//!
//! Shared by the process runner ([`super::ClaudeRunner`]: a child's pipes and `wait`) and the
//! container runner (`crate::docker::ContainerRunner`: an attached container's demultiplexed
//! output and the engine's wait), so both judge runs and time them out identically:
//!
//! - **idle timeout**: no stdout line for `idle_timeout` (every line counts, `system/api_retry`
//!   included, so a CLI waiting out an API backoff is not taken for a hung one); only while
//!   the run has not exited;
//! - **hard timeout**: `hard_timeout` after the start, whatever happens;
//! - after the run exits, stdout may stay open for [`AFTER_EXIT_GRACE`] (held by something it
//!   started) before the run is closed anyway.

use std::future::Future;
use std::time::Duration;

use actors::agent::{AgentError, AgentOutcome, ProgressSink};
use tokio::io::AsyncBufRead;
use tokio::time::{Instant, sleep_until};

use super::accumulator::StreamAccumulator;
use super::process::{Line, LineReader};

/// After the run exits, how long stdout may stay open before the run is closed anyway.
pub const AFTER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// How [`watch`] saw a run end.
#[derive(Debug)]
pub enum Ended {
    /// The run exited by itself; `code` is `None` when a signal ended it (or it is unknown).
    Exited {
        code: Option<i32>,
        acc: StreamAccumulator,
    },
    /// A timeout fired: the caller must kill the run.
    Stopped {
        error: AgentError,
        acc: StreamAccumulator,
    },
}

impl Ended {
    /// The outcome, once the caller has killed what was left and collected `stderr_tail`.
    /// `what` names the run in logs ("claude run", "claude container run").
    pub fn conclude(self, stderr_tail: &str, what: &str) -> AgentOutcome {
        match self {
            Self::Exited { code, acc } => {
                log_notes(&acc);
                let outcome = acc.finish(code, stderr_tail);
                tracing::info!(?code, error = ?outcome.error, "{what} ended");
                outcome
            }
            Self::Stopped { error, acc } => {
                tracing::warn!(%error, stderr = %stderr_tail, "{what} stopped");
                log_notes(&acc);
                acc.abort(error)
            }
        }
    }
}

/// Reads `lines` into `acc` and forwards progress until `exit` has resolved (to the exit
/// code) and `lines` has ended, or a timeout fires.
pub async fn watch<R: AsyncBufRead + Unpin>(
    lines: &mut LineReader<R>,
    exit: impl Future<Output = Option<i32>>,
    mut acc: StreamAccumulator,
    (idle_timeout, hard_timeout): (Duration, Duration),
    progress: &ProgressSink,
) -> Ended {
    let started = Instant::now();
    let hard_deadline = started + hard_timeout;
    let mut idle_deadline = started + idle_timeout;
    let mut stdout_open = true;
    // Set when the run has exited: Some(exit code, or None for a signal).
    let mut exited: Option<Option<i32>> = None;
    let mut drain_deadline = started;
    let mut exit = std::pin::pin!(exit);
    loop {
        if let (false, Some(code)) = (stdout_open, exited) {
            return Ended::Exited { code, acc };
        }
        tokio::select! {
            line = lines.next_line(), if stdout_open => match line {
                Ok(Some(Line::Text(line))) => {
                    idle_deadline = Instant::now() + idle_timeout;
                    for event in acc.push_line(&line) {
                        progress(event);
                    }
                }
                Ok(Some(Line::TooLong { bytes })) => {
                    idle_deadline = Instant::now() + idle_timeout;
                    acc.skip_oversized(bytes);
                }
                Ok(None) => stdout_open = false,
                Err(err) => {
                    tracing::warn!(%err, "reading claude's stdout failed");
                    stdout_open = false;
                }
            },
            code = &mut exit, if exited.is_none() => {
                exited = Some(code);
                drain_deadline = Instant::now() + AFTER_EXIT_GRACE;
            }
            () = sleep_until(drain_deadline), if exited.is_some() && stdout_open => {
                tracing::warn!("claude exited but something it started holds its stdout open");
                stdout_open = false;
            }
            () = sleep_until(idle_deadline), if exited.is_none() => {
                return Ended::Stopped { error: AgentError::IdleTimeout(idle_timeout), acc };
            }
            () = sleep_until(hard_deadline) => {
                return Ended::Stopped { error: AgentError::HardTimeout(hard_timeout), acc };
            }
        }
    }
}

fn log_notes(acc: &StreamAccumulator) {
    let notes = acc.notes();
    if notes.skipped_lines > 0
        || !notes.permission_denials.is_empty()
        || notes.failed_tool_count > 0
    {
        tracing::info!(
            skipped_lines = notes.skipped_lines,
            permission_denials = notes.permission_denials.len(),
            failed_tools = notes.failed_tool_count,
            api_retries = notes.api_retries,
            "claude run notes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::process::MAX_LINE_BYTES;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncWriteExt, BufReader, DuplexStream};

    const RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":1,"error_status":529,"error":"overloaded"}"#;
    const RESULT: &str =
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}"#;

    fn sink() -> (ProgressSink, Arc<Mutex<usize>>) {
        let count = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&count);
        (Box::new(move |_| *seen.lock().unwrap() += 1), count)
    }

    fn pipe() -> (DuplexStream, LineReader<BufReader<DuplexStream>>) {
        let (write, read) = tokio::io::duplex(1 << 16);
        (write, LineReader::new(BufReader::new(read), MAX_LINE_BYTES))
    }

    #[tokio::test]
    async fn api_retries_keep_a_run_alive_past_the_idle_timeout() {
        let (mut write, mut lines) = pipe();
        let (progress, count) = sink();
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // Five retries 300 ms apart: 1.5 s in all, twice the idle timeout.
            for _ in 0..5 {
                write
                    .write_all(format!("{RETRY}\n").as_bytes())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            write
                .write_all(format!("{RESULT}\n").as_bytes())
                .await
                .unwrap();
            drop(write);
            let _ = exit_tx.send(Some(0));
        });
        let exit = async { exit_rx.await.ok().flatten() };
        let timeouts = (Duration::from_millis(750), Duration::from_secs(60));
        let ended = watch(
            &mut lines,
            exit,
            StreamAccumulator::new(),
            timeouts,
            &progress,
        )
        .await;
        assert!(
            matches!(ended, Ended::Exited { code: Some(0), .. }),
            "{ended:?}"
        );
        assert_eq!(
            *count.lock().unwrap(),
            5,
            "every retry reported as progress"
        );
        assert_eq!(ended.conclude("", "test run").error, None);
    }

    #[tokio::test]
    async fn silence_is_an_idle_timeout_and_endless_output_a_hard_timeout() {
        let (_write, mut lines) = pipe();
        let (progress, _) = sink();
        let never = std::future::pending::<Option<i32>>();
        let idle = Duration::from_millis(300);
        let timeouts = (idle, Duration::from_secs(60));
        let ended = watch(
            &mut lines,
            never,
            StreamAccumulator::new(),
            timeouts,
            &progress,
        )
        .await;
        let outcome = ended.conclude("", "test run");
        assert_eq!(outcome.error, Some(AgentError::IdleTimeout(idle)));

        let (mut write, mut lines) = pipe();
        tokio::spawn(async move {
            while write
                .write_all(b"{\"type\":\"keep_alive\"}\n")
                .await
                .is_ok()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let never = std::future::pending::<Option<i32>>();
        let hard = Duration::from_secs(1);
        let timeouts = (Duration::from_millis(500), hard);
        let ended = watch(
            &mut lines,
            never,
            StreamAccumulator::new(),
            timeouts,
            &progress,
        )
        .await;
        let outcome = ended.conclude("", "test run");
        assert_eq!(outcome.error, Some(AgentError::HardTimeout(hard)));
    }

    #[tokio::test]
    async fn stdout_held_open_after_exit_is_closed_after_the_grace() {
        let (mut write, mut lines) = pipe();
        write
            .write_all(format!("{RESULT}\n").as_bytes())
            .await
            .unwrap();
        let (progress, _) = sink();
        let started = Instant::now();
        let timeouts = (Duration::from_secs(600), Duration::from_secs(600));
        let exited = async { Some(0) };
        let ended = watch(
            &mut lines,
            exited,
            StreamAccumulator::new(),
            timeouts,
            &progress,
        )
        .await;
        assert!(matches!(ended, Ended::Exited { code: Some(0), .. }));
        let waited = started.elapsed();
        assert!(
            waited >= AFTER_EXIT_GRACE && waited < AFTER_EXIT_GRACE * 2,
            "{waited:?}"
        );
        drop(write);
    }
}
