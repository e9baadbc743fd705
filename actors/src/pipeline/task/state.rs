//! A task's durable state: [`TaskSnapshot`], saved at every transition (format 2; format 1,
//! from before release trains, still loads).
//!
//! Everything a restarted task needs is here: where it is, its branch and worktree, the
//! session to resume, the frozen QA tests, the attempts and failure signatures, and a bounded
//! history. A phase that was under way when the daemon died is simply run again: each phase
//! starts from what the last transition committed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Snapshot, SnapshotError, decode_payload};

use crate::pipeline::phase::{Counters, Status};

/// How many transitions the history keeps (the oldest go first).
pub const HISTORY_LIMIT: usize = 64;
/// How much failing test output is kept for the next worker's prompt.
pub const FAILURE_TAIL_BYTES: usize = 4000;

/// What lists of tasks show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub id: u64,
    pub repo: String,
    pub title: String,
    pub status: Status,
    pub updated_ms: u64,
    pub impl_attempts: u32,
    pub branch: Option<String>,
    pub reason: Option<String>,
    /// Why its step is waiting (sandbox or git trouble), while it waits.
    pub waiting: Option<String>,
}

impl TaskSummary {
    pub fn of(snap: &TaskSnapshot) -> Self {
        Self {
            id: snap.id,
            repo: snap.task.repo.clone(),
            title: snap.task.title.clone(),
            status: snap.status,
            updated_ms: snap.updated_ms,
            impl_attempts: snap.impl_attempts,
            branch: snap.branch.clone(),
            reason: snap.reason.clone(),
            waiting: snap.waiting.clone(),
        }
    }
}

/// What creates a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub repo: String,
    pub title: String,
    pub description: String,
    /// The chat that asked for it (reports go there too).
    pub origin: Option<String>,
    /// Who asked (a chat user id, or `cli`).
    pub requested_by: String,
}

/// One transition, for the history shown to people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub at_ms: u64,
    pub note: String,
}

/// The task's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub id: u64,
    pub task: NewTask,
    pub status: Status,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    /// The commit of `main` the branch started from.
    pub base: Option<String>,
    /// The session the next agent run resumes.
    pub session_id: Option<String>,
    /// The branch head when the current phase began (set with every transition), so a
    /// phase re-run after a crash sees the work it had already committed as its own.
    pub phase_base: Option<String>,
    /// Why the current step cannot run right now (sandbox or git trouble); cleared by the
    /// next transition. Shown in lists, never counted as an attempt.
    pub waiting: Option<String>,
    pub phase_attempts: u32,
    pub impl_attempts: u32,
    /// Failure signatures of implementation attempts, oldest first (bounded).
    pub signatures: Vec<String>,
    /// The frozen QA test files, their hash and the commit that holds them.
    pub qa_files: Vec<String>,
    pub qa_hash: Option<String>,
    pub qa_commit: Option<String>,
    /// What the next agent must be told: failing output, restored tests (bounded).
    pub feedback: Option<String>,
    /// Why the task failed or is blocked.
    pub reason: Option<String>,
    pub cost_usd: f64,
    pub history: Vec<Transition>,
    /// Times a release train sent the task back to rebase.
    pub rebases: u32,
    /// The merge commit on `main`, once a train merged the branch.
    pub merged: Option<String>,
    /// The files in conflict where the current rebase stopped (for the worker's prompt).
    pub conflicts: Vec<String>,
}

impl Snapshot for TaskSnapshot {
    const VERSION: u16 = 2;

    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
        match version {
            1 => Ok(decode_payload::<v1::TaskSnapshot>(payload)?.into()),
            v => Err(SnapshotError::UnknownVersion(v)),
        }
    }
}

/// Format version 1, frozen: tasks before release trains.
mod v1 {
    use std::path::PathBuf;

    use serde::{Deserialize, Serialize};

    use super::{NewTask, Status, Transition};

    #[derive(Serialize, Deserialize)]
    pub struct TaskSnapshot {
        pub id: u64,
        pub task: NewTask,
        pub status: Status,
        pub created_ms: u64,
        pub updated_ms: u64,
        pub worktree: Option<PathBuf>,
        pub branch: Option<String>,
        pub base: Option<String>,
        pub session_id: Option<String>,
        pub phase_base: Option<String>,
        pub waiting: Option<String>,
        pub phase_attempts: u32,
        pub impl_attempts: u32,
        pub signatures: Vec<String>,
        pub qa_files: Vec<String>,
        pub qa_hash: Option<String>,
        pub qa_commit: Option<String>,
        pub feedback: Option<String>,
        pub reason: Option<String>,
        pub cost_usd: f64,
        pub history: Vec<Transition>,
    }

    impl From<TaskSnapshot> for super::TaskSnapshot {
        fn from(v: TaskSnapshot) -> Self {
            Self {
                id: v.id,
                task: v.task,
                status: v.status,
                created_ms: v.created_ms,
                updated_ms: v.updated_ms,
                worktree: v.worktree,
                branch: v.branch,
                base: v.base,
                session_id: v.session_id,
                phase_base: v.phase_base,
                waiting: v.waiting,
                phase_attempts: v.phase_attempts,
                impl_attempts: v.impl_attempts,
                signatures: v.signatures,
                qa_files: v.qa_files,
                qa_hash: v.qa_hash,
                qa_commit: v.qa_commit,
                feedback: v.feedback,
                reason: v.reason,
                cost_usd: v.cost_usd,
                history: v.history,
                rebases: 0,
                merged: None,
                conflicts: Vec::new(),
            }
        }
    }
}

impl TaskSnapshot {
    pub fn new(id: u64, task: NewTask, now_ms: u64) -> Self {
        Self {
            id,
            task,
            status: Status::Backlog,
            created_ms: now_ms,
            updated_ms: now_ms,
            worktree: None,
            branch: None,
            base: None,
            session_id: None,
            phase_base: None,
            waiting: None,
            phase_attempts: 0,
            impl_attempts: 0,
            signatures: Vec::new(),
            qa_files: Vec::new(),
            qa_hash: None,
            qa_commit: None,
            feedback: None,
            reason: None,
            cost_usd: 0.0,
            history: Vec::new(),
            rebases: 0,
            merged: None,
            conflicts: Vec::new(),
        }
    }

    pub fn counters(&self) -> Counters {
        Counters {
            phase_attempts: self.phase_attempts,
            impl_attempts: self.impl_attempts,
            signatures: self.signatures.clone(),
            rebases: self.rebases,
        }
    }

    /// Moves to `to`, recording why; resets the per-phase attempt count on a phase change.
    pub fn move_to(&mut self, to: Status, note: impl Into<String>, now_ms: u64) {
        if to != self.status {
            self.phase_attempts = 0;
        }
        self.history.push(Transition {
            from: self.status,
            to,
            at_ms: now_ms,
            note: note.into(),
        });
        if self.history.len() > HISTORY_LIMIT {
            self.history.remove(0);
        }
        self.status = to;
        self.waiting = None;
        self.updated_ms = now_ms;
    }

    /// Keeps the failure signature of an implementation attempt (the last few only).
    pub fn push_signature(&mut self, signature: String) {
        self.signatures.push(signature);
        if self.signatures.len() > 8 {
            self.signatures.remove(0);
        }
    }

    /// The spec file, relative to the worktree. Under a per-task folder so that specs of
    /// parallel tasks never conflict when their branches are merged.
    pub fn spec_file(&self) -> String {
        spec_file(self.id)
    }
}

/// See [`TaskSnapshot::spec_file`].
pub fn spec_file(id: u64) -> String {
    format!(".borg/task-{id}/spec.md")
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A stable signature of a failure: its text with digits removed (timings, pids and line
/// numbers vary between identical failures), hashed with FNV-1a.
pub fn signature(text: &str) -> String {
    let hash = text
        .bytes()
        .filter(|b| !b.is_ascii_digit())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisors::snapshot::{decode, encode};

    fn sample() -> TaskSnapshot {
        TaskSnapshot::new(
            7,
            NewTask {
                repo: "app".into(),
                title: "Add greet".into(),
                description: "say hello".into(),
                origin: Some("tg:1".into()),
                requested_by: "tg:2".into(),
            },
            1000,
        )
    }

    #[test]
    fn round_trips() {
        let mut snap = sample();
        snap.move_to(Status::Spec, "branch ready", 2000);
        snap.push_signature("abc".into());
        let back: TaskSnapshot = decode(&encode(&snap)).unwrap();
        assert_eq!(back, snap);
    }

    impl Snapshot for v1::TaskSnapshot {
        const VERSION: u16 = 1;
    }

    #[test]
    fn format_1_still_loads() {
        // A v1 snapshot as the previous release wrote it.
        let old = sample();
        let v1 = v1::TaskSnapshot {
            id: old.id,
            task: old.task.clone(),
            status: Status::Done,
            created_ms: 1000,
            updated_ms: 1000,
            worktree: None,
            branch: Some("borg/task-7".into()),
            base: None,
            session_id: None,
            phase_base: None,
            waiting: None,
            phase_attempts: 0,
            impl_attempts: 2,
            signatures: vec![],
            qa_files: vec![],
            qa_hash: None,
            qa_commit: None,
            feedback: None,
            reason: None,
            cost_usd: 0.5,
            history: vec![],
        };
        let back: TaskSnapshot = decode(&encode(&v1)).unwrap();
        assert_eq!(back.status, Status::Done);
        assert_eq!(back.impl_attempts, 2);
        assert_eq!(back.branch.as_deref(), Some("borg/task-7"));
        assert_eq!((back.rebases, back.merged), (0, None));
    }

    #[test]
    fn signatures_ignore_digits() {
        assert_eq!(
            signature("failed after 12 ms at line 3"),
            signature("failed after 97 ms at line 4")
        );
        assert_ne!(signature("expected hello"), signature("expected world"));
    }

    #[test]
    fn tail_cuts_at_a_char_boundary() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }

    #[test]
    fn a_phase_change_resets_the_phase_attempts() {
        let mut snap = sample();
        snap.phase_attempts = 2;
        snap.move_to(Status::Spec, "", 1);
        assert_eq!(snap.phase_attempts, 0);
        snap.phase_attempts = 1;
        snap.move_to(Status::Spec, "again", 2);
        assert_eq!(snap.phase_attempts, 1);
    }
}
