//! The task output hub: what each task's agents did and said, kept for people watching.
//!
//! A task's agent progress (tool calls, text, retries) used to go only to the log. The hub
//! keeps the recent lines of the recent tasks in memory, process-wide and keyed by task id,
//! and hands them out two ways: as a replay (`/api/tasks/{id}`), and as a replay followed by a
//! live feed (`/api/tasks/{id}/stream`). Replay and subscription are taken under one lock, so
//! a follower sees every line exactly once, in order.
//!
//! Everything is bounded: [`LINES_PER_TASK`] lines and [`BYTES_PER_TASK`] bytes per task (the
//! oldest go first), [`TASKS_KEPT`] tasks (the one written to least recently goes first), and
//! a broadcast of [`LIVE_CAPACITY`] lines per task whose slow readers are told they lagged
//! rather than holding anything up. Nothing is persisted: the output is a view, not state;
//! a restarted daemon starts with an empty hub.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use serde::Serialize;
use supervisors::snapshot::now_ms;
use tokio::sync::broadcast;

use crate::agent::{AgentProgress, ProgressSink};
use crate::pipeline::phase::Status;

/// Most lines kept per task.
pub const LINES_PER_TASK: usize = 500;
/// Most bytes of text kept per task.
pub const BYTES_PER_TASK: usize = 256 * 1024;
/// Most tasks kept.
pub const TASKS_KEPT: usize = 64;
/// Lines a live follower may fall behind before it is told it lagged.
pub const LIVE_CAPACITY: usize = 256;
/// A longer line is cut here (on a character boundary) and marked with `…`.
pub const LINE_BYTES: usize = 8 * 1024;

/// What a line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// The agent's session started.
    Started,
    /// The agent called a tool (the line is its short summary).
    Tool,
    /// The agent said something.
    Text,
    /// The model API failed and the CLI retries.
    Retry,
}

/// One line of a task's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputLine {
    /// Per task, from 1, never reused while the daemon runs.
    pub seq: u64,
    pub at_ms: u64,
    /// The phase whose agent produced it.
    pub phase: Status,
    pub kind: LineKind,
    pub text: String,
}

/// A task's recent output.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    pub lines: Vec<Arc<OutputLine>>,
    /// Lines produced but no longer kept (the bounds pushed them out).
    pub dropped: u64,
}

struct TaskOutput {
    lines: VecDeque<Arc<OutputLine>>,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
    live: broadcast::Sender<Arc<OutputLine>>,
}

impl TaskOutput {
    fn new() -> Self {
        Self {
            lines: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            dropped: 0,
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    fn recent(&self) -> Recent {
        Recent {
            lines: self.lines.iter().cloned().collect(),
            dropped: self.dropped,
        }
    }
}

#[derive(Default)]
struct Hub {
    tasks: HashMap<u64, TaskOutput>,
    /// Task ids, least recently written first.
    order: VecDeque<u64>,
}

impl Hub {
    /// The entry of `task`, created (evicting the stalest task if full) when missing, and
    /// marked as the most recently used.
    fn entry(&mut self, task: u64) -> &mut TaskOutput {
        if let Some(at) = self.order.iter().position(|t| *t == task) {
            self.order.remove(at);
        } else if self.tasks.len() >= TASKS_KEPT
            && let Some(stalest) = self.order.pop_front()
        {
            self.tasks.remove(&stalest);
        }
        self.order.push_back(task);
        self.tasks.entry(task).or_insert_with(TaskOutput::new)
    }

    fn push(&mut self, task: u64, phase: Status, kind: LineKind, text: String) {
        let out = self.entry(task);
        let line = Arc::new(OutputLine {
            seq: out.next_seq,
            at_ms: now_ms(),
            phase,
            kind,
            text,
        });
        out.next_seq += 1;
        out.bytes += line.text.len();
        out.lines.push_back(line.clone());
        while out.lines.len() > LINES_PER_TASK || out.bytes > BYTES_PER_TASK {
            let Some(old) = out.lines.pop_front() else {
                break;
            };
            out.bytes -= old.text.len();
            out.dropped += 1;
        }
        // Nobody following is fine: the ring still holds the line.
        let _ = out.live.send(line);
    }

    fn recent(&self, task: u64) -> Option<Recent> {
        self.tasks.get(&task).map(TaskOutput::recent)
    }

    fn follow(&mut self, task: u64) -> (Recent, broadcast::Receiver<Arc<OutputLine>>) {
        let out = self.entry(task);
        (out.recent(), out.live.subscribe())
    }
}

static HUB: LazyLock<Mutex<Hub>> = LazyLock::new(Mutex::default);

fn hub() -> MutexGuard<'static, Hub> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    HUB.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends a line to `task`'s output and tells its followers.
pub fn push(task: u64, phase: Status, kind: LineKind, text: &str) {
    let text = cut(text);
    hub().push(task, phase, kind, text);
}

/// Records an agent's progress as a line of `task`'s output.
pub fn record(task: u64, phase: Status, progress: &AgentProgress) {
    match progress {
        AgentProgress::Started { session_id } => push(
            task,
            phase,
            LineKind::Started,
            &format!("{phase} agent started (session {session_id})"),
        ),
        AgentProgress::ToolUse { summary, .. } => push(task, phase, LineKind::Tool, summary),
        AgentProgress::Text(text) => push(task, phase, LineKind::Text, text),
        AgentProgress::Retrying { attempt, error } => push(
            task,
            phase,
            LineKind::Retry,
            &format!("model API retry {attempt}: {error}"),
        ),
    }
}

/// Wraps a progress sink so that everything it is told also goes into `task`'s output.
pub fn tee(task: u64, phase: Status, sink: ProgressSink) -> ProgressSink {
    Box::new(move |progress: AgentProgress| {
        record(task, phase, &progress);
        sink(progress)
    })
}

/// `task`'s recent output, if the hub holds any.
pub fn recent(task: u64) -> Option<Recent> {
    hub().recent(task)
}

/// `task`'s recent output and a live feed of every line after it. Creates the task's entry
/// if it has none yet, so call it only for a task that exists.
pub fn follow(task: u64) -> (Recent, broadcast::Receiver<Arc<OutputLine>>) {
    hub().follow(task)
}

/// `text` cut to at most [`LINE_BYTES`] bytes on a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= LINE_BYTES {
        return text.to_owned();
    }
    let mut end = LINE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_gets_the_replay_then_every_new_line_once() {
        // The process-wide hub, through the public functions (a task id no other test uses).
        push(9_001, Status::Spec, LineKind::Tool, "Write spec.md");
        let (recent, mut live) = follow(9_001);
        assert_eq!(recent.lines.len(), 1);
        assert_eq!(recent.lines[0].seq, 1);
        let sink = tee(9_001, Status::Spec, Box::new(|_| {}));
        sink(AgentProgress::Text("done".to_owned()));
        let next = live.try_recv().unwrap();
        assert_eq!(
            (next.seq, next.kind, next.text.as_str()),
            (2, LineKind::Text, "done")
        );
        assert!(live.try_recv().is_err());
    }

    #[test]
    fn lines_and_bytes_are_bounded_and_long_lines_cut() {
        let mut hub = Hub::default();
        for i in 0..LINES_PER_TASK + 10 {
            hub.push(1, Status::Impl, LineKind::Text, format!("line {i}"));
        }
        let recent = hub.recent(1).unwrap();
        assert_eq!(recent.lines.len(), LINES_PER_TASK);
        assert_eq!(recent.dropped, 10);
        assert_eq!(recent.lines[0].text, "line 10");

        let long = cut(&"é".repeat(LINE_BYTES));
        assert!(long.len() <= LINE_BYTES && long.ends_with('…'));
        for _ in 0..64 {
            hub.push(2, Status::Impl, LineKind::Text, long.clone());
        }
        let kept: usize = hub
            .recent(2)
            .unwrap()
            .lines
            .iter()
            .map(|l| l.text.len())
            .sum();
        assert!(kept <= BYTES_PER_TASK, "{kept}");
    }

    #[test]
    fn the_stalest_task_goes_when_too_many_are_kept() {
        let mut hub = Hub::default();
        for task in 0..TASKS_KEPT as u64 {
            hub.push(task, Status::Qa, LineKind::Tool, "x".into());
        }
        // Task 0 written again: task 1 is now the stalest.
        hub.push(0, Status::Qa, LineKind::Tool, "y".into());
        hub.push(TASKS_KEPT as u64, Status::Qa, LineKind::Tool, "z".into());
        assert_eq!(hub.tasks.len(), TASKS_KEPT);
        assert!(hub.recent(1).is_none());
        assert!(hub.recent(0).is_some() && hub.recent(TASKS_KEPT as u64).is_some());
    }
}
