//! The task actor: one per pipeline task, driving it through the phases of
//! [`crate::pipeline::phase`] and snapshotting it at every transition (key
//! `pipeline/task/<id>`).
//!
//! The work of a phase runs as a [step](step) beside the mailbox, so the actor keeps answering
//! (status, cancel) while an agent works. The step's result is applied in the actor: the
//! transition is decided by [`transition`], saved, reported to the repository actor and
//! announced, and the next step starts. A restarted task re-runs the phase it was in.

pub mod output;
pub mod prompt;
mod rebase;
pub mod state;
pub mod step;
mod work;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisors::ActorStats;
use supervisors::snapshot::{Persister, SnapshotStore, now_ms};
use tokio::sync::Semaphore;

use crate::abort::AbortOnDrop;
use crate::agent::AgentRunner;
use crate::pipeline::phase::{Event, Status, transition};
use crate::pipeline::ports::{Announcer, TestRunner, Vcs};
use crate::slots::SlotsMsg;
use state::{NewTask, TaskSnapshot, TaskSummary};
use step::StepResult;

/// Settings every task shares.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub model: String,
    pub idle_timeout: Duration,
    pub hard_timeout: Duration,
    pub test_timeout: Duration,
    pub max_turns: Option<u32>,
    /// Each task gets `<sessions_dir>/task-<id>/home`, kept from phase to phase.
    pub sessions_dir: PathBuf,
    /// Wait before implementation attempt n+1: `retry_backoff * 2^(n-1)`.
    pub retry_backoff: Duration,
    /// Wait before trying a stalled step again.
    pub stall_retry: Duration,
    /// Where every phase change is announced.
    pub admin_chat: Option<String>,
}

/// One repository, as its tasks see it.
pub struct RepoDeps {
    pub name: String,
    pub vcs: Arc<dyn Vcs>,
    pub test_cmd: String,
    /// One permit per working phase: tasks of this repository take turns within a phase.
    pub locks: PhaseLocks,
}

/// One permit per working phase of one repository.
pub type PhaseLocks = Arc<HashMap<Status, Arc<Semaphore>>>;

impl RepoDeps {
    /// Fresh phase turns. Make them once per repository and keep them across restarts of its
    /// actors: running tasks hold them, and new ones must take turns with those.
    pub fn phase_locks() -> PhaseLocks {
        Arc::new(
            [
                Status::Spec,
                Status::Qa,
                Status::Impl,
                Status::Test,
                Status::Rebase,
            ]
            .into_iter()
            .map(|s| (s, Arc::new(Semaphore::new(1))))
            .collect(),
        )
    }

    pub fn new(
        name: impl Into<String>,
        vcs: Arc<dyn Vcs>,
        test_cmd: impl Into<String>,
        locks: PhaseLocks,
    ) -> Self {
        Self {
            name: name.into(),
            vcs,
            test_cmd: test_cmd.into(),
            locks,
        }
    }
}

/// What a task actor talks to.
#[derive(Clone)]
pub struct TaskDeps {
    pub settings: Arc<PipelineSettings>,
    pub repo: Arc<RepoDeps>,
    pub runner: Arc<dyn AgentRunner>,
    pub tests: Arc<dyn TestRunner>,
    pub slots: ActorRef<SlotsMsg>,
    pub store: Arc<dyn SnapshotStore>,
    pub announcer: Option<Arc<dyn Announcer>>,
    /// Told every change (the repository actor sets it when it starts the task).
    pub report: Option<Reporter>,
    /// The pipeline's breaker on the sandbox, passed before every agent and test run
    /// (`None`: no breaker, each task backs off on its own).
    pub gate: Option<Arc<crate::pipeline::gate::SandboxGate>>,
}

/// Receives a task's summary after every change.
pub type Reporter = Arc<dyn Fn(TaskSummary) + Send + Sync>;

pub struct TaskArgs {
    pub id: u64,
    /// Used when the store has no snapshot of this task yet.
    pub new: NewTask,
    pub deps: TaskDeps,
    pub stats: Option<Arc<ActorStats>>,
}

pub enum TaskMsg {
    #[doc(hidden)]
    Advance(u64),
    #[doc(hidden)]
    StepDone(u64, Box<StepResult>),
    Get(RpcReplyPort<TaskSnapshot>),
    /// Stops the task where it is (blocked, with the reason).
    Cancel(String, RpcReplyPort<Result<(), String>>),
    /// A release train's verdict on the task's branch (the task must be `done`). Saying
    /// the same again is fine: a train resumed after a crash repeats its verdicts.
    Release(Verdict, RpcReplyPort<Result<(), String>>),
}

/// What a release train decided about a task's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Merged into `main` by this merge commit.
    Merged { commit: String },
    /// Left out, and why; the task goes back to rebase.
    Excluded { reason: String },
}

/// The store key of a task.
pub fn store_key(id: u64) -> String {
    format!("pipeline/task/{id}")
}

pub struct Task;

pub struct TaskState {
    deps: Arc<TaskDeps>,
    persister: Persister<TaskSnapshot>,
    snap: TaskSnapshot,
    /// Invalidates steps and timers of earlier states.
    generation: u64,
    step: Option<AbortOnDrop>,
    /// Stalls in a row, for the backoff.
    stalls: u32,
}

impl Actor for Task {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = TaskArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TaskMsg>,
        args: TaskArgs,
    ) -> Result<TaskState, ActorProcessingErr> {
        let (persister, restored) =
            Persister::restore(args.deps.store.clone(), store_key(args.id), args.stats).await?;
        let fresh = restored.is_none();
        let snap = restored.unwrap_or_else(|| TaskSnapshot::new(args.id, args.new, now_ms()));
        let state = TaskState {
            deps: Arc::new(args.deps),
            persister,
            snap,
            generation: 0,
            step: None,
            stalls: 0,
        };
        if fresh {
            state.persister.save(&state.snap).await?;
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<TaskMsg>,
        state: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        state.report();
        state.next(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TaskMsg>,
        msg: TaskMsg,
        state: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TaskMsg::Advance(generation) if generation == state.generation => {
                state.advance(&myself)
            }
            TaskMsg::StepDone(generation, result) if generation == state.generation => {
                state.step = None;
                state.step_done(&myself, *result).await?;
            }
            TaskMsg::Get(reply) => {
                let _ = reply.send(state.snap.clone());
            }
            TaskMsg::Cancel(why, reply) => {
                let result = state.cancel(why).await;
                let _ = reply.send(result);
            }
            TaskMsg::Release(verdict, reply) => {
                let result = state.release(&myself, verdict).await;
                let _ = reply.send(result);
            }
            // A step or timer of a state that has passed.
            _ => {}
        }
        Ok(())
    }
}

impl TaskState {
    /// Starts whatever the current status needs, as a new generation.
    fn next(&mut self, myself: &ActorRef<TaskMsg>) {
        self.generation += 1;
        let generation = self.generation;
        match self.snap.status {
            status if status.is_at_rest() => {}
            Status::Retry => {
                let n = self.snap.impl_attempts.saturating_sub(1).min(10);
                let wait = self.deps.settings.retry_backoff * 2u32.pow(n);
                tracing::info!(task = self.snap.id, "next attempt in {wait:?}");
                myself.send_after(wait, move || TaskMsg::Advance(generation));
            }
            _ => {
                let _ = myself.cast(TaskMsg::Advance(generation));
            }
        }
    }

    fn advance(&mut self, myself: &ActorRef<TaskMsg>) {
        if self.snap.status == Status::Retry {
            let generation = self.generation;
            let _ = myself.cast(TaskMsg::StepDone(
                generation,
                Box::new(StepResult::Advance {
                    snap: Box::new(self.snap.clone()),
                    event: Event::Resume,
                    note: "backoff over".into(),
                }),
            ));
            return;
        }
        let (deps, snap, me, generation) = (
            self.deps.clone(),
            self.snap.clone(),
            myself.clone(),
            self.generation,
        );
        self.step = Some(AbortOnDrop::spawn(async move {
            // In a task of its own, so a panic in a step becomes a stall rather than a task
            // that waits for a result that never comes. Aborting the outer task aborts it.
            let inner = AbortOnDrop::spawn_with(step::run(deps, snap));
            let result = match inner.join().await {
                Ok(result) => result,
                Err(e) => StepResult::Stalled {
                    reason: format!("the step failed unexpectedly: {e}"),
                },
            };
            let _ = me.cast(TaskMsg::StepDone(generation, Box::new(result)));
        }));
    }

    async fn step_done(
        &mut self,
        myself: &ActorRef<TaskMsg>,
        result: StepResult,
    ) -> Result<(), ActorProcessingErr> {
        let (mut snap, event, note) = match result {
            StepResult::Advance { snap, event, note } => (*snap, event, note),
            StepResult::Stalled { reason } => {
                // Backs off (capped at 5 minutes) and says why, in lists and `task show`.
                let wait = (self.deps.settings.stall_retry * 2u32.pow(self.stalls.min(8)))
                    .min(Duration::from_secs(300));
                self.stalls += 1;
                let gate = self.deps.gate.clone().filter(|g| g.open_reason().is_some());
                let again = match gate {
                    Some(_) => "once the sandbox is back".to_owned(),
                    None => format!("in {wait:?}"),
                };
                tracing::warn!(task = self.snap.id, status = %self.snap.status,
                    "stalled, trying again {again}: {reason}");
                if self.snap.waiting.as_deref() != Some(reason.as_str()) {
                    self.snap.waiting = Some(reason);
                    self.persister.save(&self.snap).await?;
                    self.report();
                }
                let generation = self.generation;
                match gate {
                    // The sandbox is down for everyone: go on the moment it is back, not
                    // when this task's own backoff happens to end.
                    Some(gate) => {
                        let me = myself.clone();
                        self.step = Some(AbortOnDrop::spawn(async move {
                            gate.closed().await;
                            let _ = me.cast(TaskMsg::Advance(generation));
                        }));
                    }
                    _ => {
                        myself.send_after(wait, move || TaskMsg::Advance(generation));
                    }
                }
                return Ok(());
            }
        };
        self.stalls = 0;
        let from = snap.status;
        let to = transition(from, &event, &snap.counters())?;
        if matches!(to, Status::Failed | Status::Blocked) {
            snap.reason = Some(note.clone());
        }
        snap.move_to(to, note.clone(), now_ms());
        // Durable before anyone hears of it: a crash now re-runs nothing that finished.
        self.persister.save(&snap).await?;
        self.snap = snap;
        tracing::info!(task = self.snap.id, %from, %to, "{note}");
        self.report();
        if from != to {
            self.announce(from, to, &note);
        }
        self.next(myself);
        Ok(())
    }

    async fn cancel(&mut self, why: String) -> Result<(), String> {
        let from = self.snap.status;
        let to = transition(from, &Event::Cancel, &self.snap.counters())
            .map_err(|_| format!("task #{} is already {from}", self.snap.id))?;
        self.step = None;
        self.generation += 1;
        let mut snap = self.snap.clone();
        snap.reason = Some(why.clone());
        snap.move_to(to, why.clone(), now_ms());
        self.persister
            .save(&snap)
            .await
            .map_err(|e| format!("could not save the task: {e}"))?;
        self.snap = snap;
        self.report();
        self.announce(from, to, &why);
        Ok(())
    }

    async fn release(
        &mut self,
        myself: &ActorRef<TaskMsg>,
        verdict: Verdict,
    ) -> Result<(), String> {
        let (id, from) = (self.snap.id, self.snap.status);
        match (&verdict, from) {
            (Verdict::Merged { commit }, Status::Merged)
                if self.snap.merged.as_deref() == Some(commit.as_str()) =>
            {
                return Ok(());
            }
            (Verdict::Excluded { .. }, Status::Rebase) => return Ok(()),
            (_, Status::Done) => {}
            _ => return Err(format!("task #{id} is {from}, not done")),
        }
        let mut snap = self.snap.clone();
        let (event, note) = match verdict {
            Verdict::Merged { commit } => {
                let note = format!("merged into main ({})", &commit[..commit.len().min(10)]);
                snap.merged = Some(commit);
                (Event::Released, note)
            }
            Verdict::Excluded { reason } => {
                snap.feedback = Some(format!(
                    "The release train left this branch out: {reason}. It is being rebased \
                     onto the new main."
                ));
                (
                    Event::Excluded,
                    format!("left out of the release: {reason}"),
                )
            }
        };
        let to = transition(from, &event, &snap.counters()).map_err(|e| e.to_string())?;
        if to == Status::Rebase {
            snap.rebases += 1;
        }
        if to == Status::Failed {
            snap.reason = Some(format!(
                "{note}; it was rebased {} times already",
                snap.rebases
            ));
        }
        snap.move_to(to, note.clone(), now_ms());
        self.persister
            .save(&snap)
            .await
            .map_err(|e| format!("could not save the task: {e}"))?;
        self.snap = snap;
        tracing::info!(task = id, %from, %to, "{note}");
        self.report();
        self.announce(from, to, &note);
        self.next(myself);
        Ok(())
    }

    /// Tells the repository actor (its task list) where this task is.
    fn report(&self) {
        if let Some(report) = &self.deps.report {
            report(TaskSummary::of(&self.snap));
        }
    }

    fn announce(&self, from: Status, to: Status, note: &str) {
        let Some(announcer) = &self.deps.announcer else {
            return;
        };
        let s = &self.snap;
        let text = format!(
            "Task #{} ({}) in {}: {from} → {to}. {note}",
            s.id, s.task.title, s.task.repo
        );
        let mut chats: Vec<&str> = Vec::new();
        chats.extend(self.deps.settings.admin_chat.as_deref());
        if let Some(origin) = s.task.origin.as_deref()
            && !chats.contains(&origin)
        {
            chats.push(origin);
        }
        for chat in chats {
            announcer.announce(chat, text.clone());
        }
    }
}
