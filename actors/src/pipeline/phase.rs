//! The phases of a task, as data.
//!
//! ```text
//! backlog → spec → qa → impl → test → done ──(release train)──→ merged
//!                        ↑       │       │ ↑
//!                      retry ←───┘       ↓ │ (excluded: conflict or broken tests;
//!                        ↑            rebase   at most 3 rebases, then failed)
//!                        └───────────────┘ (tests fail after the rebase)
//! ```
//!
//! Failed tests retry the implementation (at most 3 attempts, then failed; the same failure
//! 3 times in a row: blocked). `done` means finished and waiting in the repository's release
//! queue; `merged` (on `main`), `failed` and `blocked` are terminal.
//!
//! Each working phase is a row of [`PHASES`]: who does it (persona and tools), what it is told
//! (a prompt template), what it must leave behind ([`Artifact`], checked by borg, never taken
//! on the agent's word), where it goes next and where a failure goes. A new phase or mode is a
//! new row, not new control flow. [`transition`] is the one place that decides the next
//! [`Status`], as an exhaustive match.

use serde::{Deserialize, Serialize};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its branch and worktree.
    Backlog,
    Spec,
    Qa,
    Impl,
    /// borg runs the test command itself.
    Test,
    /// Waiting out the backoff before the next implementation attempt.
    Retry,
    Done,
    Failed,
    /// Stopped for a human: a stuck loop, or cancelled.
    Blocked,
    /// The release train excluded the branch: the worker rebases it onto the new `main`.
    /// (Declared after the first statuses: snapshots store the variant's index.)
    Rebase,
    /// Merged into `main` by a release train.
    Merged,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Backlog,
        Status::Spec,
        Status::Qa,
        Status::Impl,
        Status::Test,
        Status::Retry,
        Status::Rebase,
        Status::Done,
        Status::Merged,
        Status::Failed,
        Status::Blocked,
    ];

    /// Nothing will ever happen to the task again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Merged | Status::Failed | Status::Blocked)
    }

    /// The task has nothing to do by itself: terminal, or `done` and waiting for a train.
    pub fn is_at_rest(self) -> bool {
        self.is_terminal() || self == Status::Done
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Backlog => "backlog",
            Status::Spec => "spec",
            Status::Qa => "qa",
            Status::Impl => "impl",
            Status::Test => "test",
            Status::Retry => "retry",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Blocked => "blocked",
            Status::Rebase => "rebase",
            Status::Merged => "merged",
        }
    }

    /// The table row of a working phase (spec, qa, impl, test, rebase).
    pub fn spec(self) -> Option<&'static PhaseSpec> {
        PHASES.iter().find(|p| p.status == self)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who works in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    Manager,
    Qa,
    Worker,
}

impl Persona {
    pub fn name(self) -> &'static str {
        match self {
            Persona::Manager => "Manager",
            Persona::Qa => "QA",
            Persona::Worker => "Worker",
        }
    }

    /// Given with `--append-system-prompt`.
    pub fn system_prompt(self) -> &'static str {
        match self {
            Persona::Manager => {
                "You are the Manager of an engineering team. You turn a task into a precise \
                 specification: requirements, the files to create or change, and acceptance \
                 criteria that tests can check. You do not write code or tests."
            }
            Persona::Qa => {
                "You are the QA engineer of an engineering team. You write automated tests that \
                 check the specification's acceptance criteria. You write tests only, never the \
                 implementation: the tests must fail until the feature exists."
            }
            Persona::Worker => {
                "You are a senior software engineer. You implement the specification so that \
                 the existing tests pass. You never change or delete the QA tests; you change \
                 the code under test."
            }
        }
    }
}

/// What a phase must leave behind, checked by borg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// The spec file exists and is not empty; borg commits it.
    SpecFile,
    /// New or changed test files, and the test command fails with them (red); borg commits
    /// them and records their content hash.
    RedTests,
    /// A new commit on the branch (the QA tests restored first if the worker touched them).
    Commit,
    /// The test command passes and the branch moved past the QA commit.
    GreenTests,
    /// The branch is rebased onto `main` (conflicts resolved, no markers left) and the test
    /// command passes on it.
    Rebased,
}

/// Where a failed phase goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Run the same phase again, up to `max_attempts`, then fail.
    Repeat,
    /// Back to the worker through [`Status::Retry`] (counted as an implementation attempt).
    Retry,
}

/// One working phase.
#[derive(Debug)]
pub struct PhaseSpec {
    pub status: Status,
    /// `None`: borg does the phase itself (no agent).
    pub persona: Option<Persona>,
    /// `--allowedTools`.
    pub tools: &'static [&'static str],
    /// The instruction, with `{placeholders}` filled by the task (see `task::prompt`).
    pub prompt: &'static str,
    pub artifact: Artifact,
    pub next: Status,
    pub on_failure: OnFailure,
    pub max_attempts: u32,
    /// Whether the next phase continues this phase's session (`--resume`).
    pub resume_session: bool,
}

const READ_WRITE: &[&str] = &["Read", "Glob", "Grep", "Write"];
const WORKER_TOOLS: &[&str] = &["Read", "Glob", "Grep", "Write", "Edit", "Bash"];

/// The working phases, in order.
pub static PHASES: [PhaseSpec; 5] = [
    PhaseSpec {
        status: Status::Spec,
        persona: Some(Persona::Manager),
        tools: READ_WRITE,
        prompt: "Phase: spec\nTask: {title}\nSpec file: {spec_file}\n\n{description}\n\nRead \
                 the repository to understand it. Then write the specification of this task \
                 to the spec file {spec_file} (create it). It must list the \
                 requirements, the exact file paths to create or change, and acceptance \
                 criteria that automated tests can check. The repository's test command is \
                 `{test_cmd}`. Do not write code or tests.",
        artifact: Artifact::SpecFile,
        next: Status::Qa,
        on_failure: OnFailure::Repeat,
        max_attempts: 2,
        resume_session: true,
    },
    PhaseSpec {
        status: Status::Qa,
        persona: Some(Persona::Qa),
        tools: READ_WRITE,
        prompt: "Phase: qa\nTask: {title}\nSpec file: {spec_file}\n\nThe specification is in \
                 {spec_file}. Write automated tests for its acceptance criteria, in \
                 the places and style of the repository's existing tests, so that the test \
                 command `{test_cmd}` runs them. Write tests only: they must FAIL now, \
                 because the feature does not exist yet.{feedback}",
        artifact: Artifact::RedTests,
        next: Status::Impl,
        on_failure: OnFailure::Repeat,
        max_attempts: 2,
        resume_session: true,
    },
    PhaseSpec {
        status: Status::Impl,
        persona: Some(Persona::Worker),
        tools: WORKER_TOOLS,
        prompt: "Phase: impl\nAttempt: {attempt}\nTask: {title}\nSpec file: {spec_file}\n\n\
                 Implement the specification in {spec_file} so that the test \
                 command `{test_cmd}` passes. These test files are frozen; do not change \
                 them: {qa_files}.{feedback}",
        artifact: Artifact::Commit,
        next: Status::Test,
        on_failure: OnFailure::Retry,
        max_attempts: 3,
        resume_session: true,
    },
    PhaseSpec {
        status: Status::Test,
        persona: None,
        tools: &[],
        prompt: "",
        artifact: Artifact::GreenTests,
        next: Status::Done,
        on_failure: OnFailure::Retry,
        max_attempts: 3,
        resume_session: true,
    },
    // Entered from `done` when a release train excludes the branch. borg runs the rebase;
    // the worker only resolves the conflicts it stops at (agents never run git).
    PhaseSpec {
        status: Status::Rebase,
        persona: Some(Persona::Worker),
        tools: WORKER_TOOLS,
        prompt: "Phase: rebase\nTask: {title}\nSpec file: {spec_file}\n\nThis task's branch \
                 is being rebased onto the new main, and these files conflict: {conflicts}. \
                 Resolve every conflict in them: keep the intent of both sides (what main \
                 changed and what this task does), and remove all conflict markers (<<<<<<<, \
                 =======, >>>>>>>). Do not run git: borg continues the rebase. The task's \
                 specification is in {spec_file}.{feedback}",
        artifact: Artifact::Rebased,
        next: Status::Done,
        on_failure: OnFailure::Retry,
        max_attempts: 1,
        resume_session: true,
    },
];

/// How many times a release train may send a task back to rebase before it fails.
pub const MAX_REBASES: u32 = 3;

/// How many identical failures in a row make a stuck loop.
pub const STUCK_AFTER: usize = 3;

/// What happened, as far as the state machine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The branch and worktree are ready.
    Prepared,
    /// The phase left its artifact.
    Passed,
    /// The phase did not leave its artifact; `signature` identifies the failure (the same
    /// signature again means the same failure).
    Missed { signature: String },
    /// The backoff before the next attempt is over.
    Resume,
    /// A person cancelled the task.
    Cancel,
    /// A release train merged the branch into `main`.
    Released,
    /// A release train left the branch out (it conflicts or breaks the tests).
    Excluded,
}

/// The counters [`transition`] decides with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Attempts at the current phase so far, this one included.
    pub phase_attempts: u32,
    /// Implementation attempts so far, this one included.
    pub impl_attempts: u32,
    /// Failure signatures of the implementation attempts, oldest first, this one included.
    pub signatures: Vec<String>,
    /// Times a release train sent the task back to rebase, not counting this one.
    pub rebases: u32,
}

/// Why a transition was refused: the event makes no sense in that status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTransition {
    pub from: Status,
    pub event: Event,
}

impl std::fmt::Display for BadTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {:?} cannot happen in status {}",
            self.event, self.from
        )
    }
}

impl std::error::Error for BadTransition {}

/// The next status. Exhaustive on purpose: a new status or event does not compile until
/// this function says what it means.
pub fn transition(from: Status, event: &Event, n: &Counters) -> Result<Status, BadTransition> {
    use Status::*;
    let bad = || {
        Err(BadTransition {
            from,
            event: event.clone(),
        })
    };
    match (from, event) {
        (Merged | Failed | Blocked, _) => bad(),
        (_, Event::Cancel) => Ok(Blocked),
        (Backlog, Event::Prepared) => Ok(Spec),
        (Backlog, _) => bad(),
        (Retry, Event::Resume) => Ok(Impl),
        (Retry, _) => bad(),
        (Done, Event::Released) => Ok(Merged),
        (Done, Event::Excluded) if n.rebases < MAX_REBASES => Ok(Rebase),
        (Done, Event::Excluded) => Ok(Failed),
        (Done, _) => bad(),
        (Spec | Qa | Impl | Test | Rebase, Event::Prepared | Event::Resume) => bad(),
        (Spec | Qa | Impl | Test | Rebase, Event::Released | Event::Excluded) => bad(),
        (Spec | Qa | Impl | Test | Rebase, Event::Passed) => Ok(phase(from).next),
        (Spec | Qa | Impl | Test | Rebase, Event::Missed { .. }) => {
            let spec = phase(from);
            Ok(match spec.on_failure {
                OnFailure::Repeat if n.phase_attempts < spec.max_attempts => from,
                OnFailure::Repeat => Failed,
                OnFailure::Retry if stuck(&n.signatures) => Blocked,
                OnFailure::Retry if n.impl_attempts < phase(Impl).max_attempts => Retry,
                OnFailure::Retry => Failed,
            })
        }
    }
}

fn phase(status: Status) -> &'static PhaseSpec {
    // Only called with working phases, which all have a row (a test checks it).
    status.spec().unwrap_or(&PHASES[0])
}

/// The last [`STUCK_AFTER`] signatures are the same.
pub fn stuck(signatures: &[String]) -> bool {
    signatures.len() >= STUCK_AFTER && {
        let tail = &signatures[signatures.len() - STUCK_AFTER..];
        tail.iter().all(|s| s == &tail[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(phase: u32, implementation: u32, signatures: &[&str]) -> Counters {
        Counters {
            phase_attempts: phase,
            impl_attempts: implementation,
            signatures: signatures.iter().map(|s| s.to_string()).collect(),
            rebases: 0,
        }
    }

    fn missed() -> Event {
        Event::Missed {
            signature: "x".into(),
        }
    }

    #[test]
    fn every_working_phase_has_a_row() {
        for status in [
            Status::Spec,
            Status::Qa,
            Status::Impl,
            Status::Test,
            Status::Rebase,
        ] {
            assert_eq!(status.spec().map(|p| p.status), Some(status));
        }
    }

    #[test]
    fn the_happy_path_goes_through_every_phase() {
        let none = Counters::default();
        let mut status = transition(Status::Backlog, &Event::Prepared, &none).unwrap();
        let mut seen = vec![status];
        while !status.is_terminal() {
            let event = match status {
                Status::Done => Event::Released,
                _ => Event::Passed,
            };
            status = transition(status, &event, &none).unwrap();
            seen.push(status);
        }
        use Status::*;
        assert_eq!(seen, [Spec, Qa, Impl, Test, Done, Merged]);
    }

    #[test]
    fn a_failed_test_retries_then_fails_after_three_attempts() {
        assert_eq!(
            transition(Status::Test, &missed(), &n(1, 1, &["a"])),
            Ok(Status::Retry)
        );
        assert_eq!(
            transition(Status::Test, &missed(), &n(1, 2, &["a", "b"])),
            Ok(Status::Retry)
        );
        assert_eq!(
            transition(Status::Test, &missed(), &n(1, 3, &["a", "b", "c"])),
            Ok(Status::Failed)
        );
        assert_eq!(
            transition(Status::Retry, &Event::Resume, &n(0, 1, &[])),
            Ok(Status::Impl)
        );
    }

    #[test]
    fn the_same_failure_three_times_is_a_stuck_loop() {
        assert_eq!(
            transition(Status::Test, &missed(), &n(1, 3, &["a", "a", "a"])),
            Ok(Status::Blocked)
        );
        assert!(!stuck(&["a".into(), "b".into(), "a".into()]));
    }

    #[test]
    fn spec_and_qa_repeat_then_fail() {
        assert_eq!(
            transition(Status::Spec, &missed(), &n(1, 0, &[])),
            Ok(Status::Spec)
        );
        assert_eq!(
            transition(Status::Qa, &missed(), &n(2, 0, &[])),
            Ok(Status::Failed)
        );
    }

    #[test]
    fn a_train_merges_a_done_task_or_sends_it_to_rebase_at_most_three_times() {
        let mut c = Counters::default();
        assert_eq!(
            transition(Status::Done, &Event::Released, &c),
            Ok(Status::Merged)
        );
        assert_eq!(
            transition(Status::Done, &Event::Excluded, &c),
            Ok(Status::Rebase)
        );
        c.rebases = MAX_REBASES;
        assert_eq!(
            transition(Status::Done, &Event::Excluded, &c),
            Ok(Status::Failed)
        );
        assert_eq!(
            transition(Status::Rebase, &Event::Passed, &c),
            Ok(Status::Done)
        );
        assert_eq!(
            transition(Status::Rebase, &missed(), &n(1, 1, &["a"])),
            Ok(Status::Retry)
        );
        assert!(transition(Status::Done, &Event::Passed, &c).is_err());
        assert!(transition(Status::Test, &Event::Released, &c).is_err());
    }

    #[test]
    fn terminal_statuses_refuse_every_event() {
        for from in [Status::Merged, Status::Failed, Status::Blocked] {
            for event in [
                Event::Passed,
                Event::Prepared,
                Event::Resume,
                Event::Cancel,
                Event::Released,
                Event::Excluded,
            ] {
                assert!(transition(from, &event, &Counters::default()).is_err());
            }
        }
        assert!(transition(Status::Backlog, &Event::Passed, &Counters::default()).is_err());
    }

    #[test]
    fn cancel_blocks_any_live_task() {
        for from in Status::ALL.iter().filter(|s| !s.is_terminal()) {
            assert_eq!(
                transition(*from, &Event::Cancel, &Counters::default()),
                Ok(Status::Blocked)
            );
        }
    }
}
