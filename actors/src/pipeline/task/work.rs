//! What the phase steps share: the [`StepResult`] a step ends with, running a phase's agent
//! in the task's sandbox ([`run_agent`]), running the test command ([`run_tests`]), and the
//! repository's phase turns. Used by the phases in `step.rs` and by the rebase phase.

use std::path::{Path, PathBuf};

use tokio::sync::OwnedSemaphorePermit;

use super::TaskDeps;
use super::state::{TaskSnapshot, signature, tail};
use crate::agent::{AgentError, AgentProgress, AgentRequest};
use crate::pipeline::phase::{Event, PhaseSpec, Status};
use crate::pipeline::ports::{TestOutcome, TestRequest};

/// What a step produced.
#[derive(Debug)]
pub enum StepResult {
    /// Apply `event` to `snap` (the updated copy); `note` goes into the history.
    Advance {
        snap: Box<TaskSnapshot>,
        event: Event,
        note: String,
    },
    /// Nothing happened that counts; try again later.
    Stalled { reason: String },
}

pub(super) fn advance(snap: TaskSnapshot, event: Event, note: impl Into<String>) -> StepResult {
    StepResult::Advance {
        snap: Box::new(snap),
        event,
        note: note.into(),
    }
}

pub(super) fn stalled(reason: impl Into<String>) -> StepResult {
    StepResult::Stalled {
        reason: reason.into(),
    }
}

pub use crate::pipeline::ports::git;

/// The task's worktree, checked and repaired before a step works in it: one deleted by hand
/// is added again from the task's branch (its committed work is all there), and a stale
/// `index.lock` that a killed git process left is cleared ([`crate::pipeline::ports::Vcs::prepare`] does both).
pub(super) async fn worktree(deps: &TaskDeps, snap: &TaskSnapshot) -> Result<PathBuf, StepResult> {
    let Some(recorded) = snap.worktree.clone() else {
        return Err(stalled("the task has no worktree yet"));
    };
    let id = snap.id;
    if !recorded.is_dir() {
        tracing::warn!(task = id, path = %recorded.display(),
            "the task's worktree is gone (deleted by hand?); adding it again from its branch");
    }
    match git(&deps.repo.vcs, move |v| v.prepare(id)).await {
        Ok(wt) => Ok(wt.path),
        Err(e) => Err(stalled(format!(
            "could not repair the task's worktree: {e}"
        ))),
    }
}

/// Waits for this repository's turn at `status` (one task per phase per repository).
pub(super) async fn phase_turn(deps: &TaskDeps, status: Status) -> Option<OwnedSemaphorePermit> {
    let lock = deps.repo.locks.get(&status)?.clone();
    lock.acquire_owned().await.ok()
}

/// Runs the phase's agent in the worktree, holding an agent slot, and counts the attempt.
/// `Err` is the step's result when the run did not end well: stalled when the sandbox or
/// the model API is unavailable (nothing counted), a miss when the agent failed.
pub(super) async fn run_agent(
    deps: &TaskDeps,
    mut snap: TaskSnapshot,
    spec: &PhaseSpec,
    wt: &Path,
) -> Result<TaskSnapshot, StepResult> {
    pass_gate(deps).await;
    let Some(_slot) = crate::slots::acquire(&deps.slots, format!("task {}", snap.id)).await else {
        return Err(stalled("the agent slots are not running"));
    };
    snap.phase_attempts += 1;
    if snap.status == Status::Impl {
        snap.impl_attempts += 1;
    }
    let request = agent_request(deps, &snap, spec, wt);
    let (id, phase) = (snap.id, snap.status);
    let progress = Box::new(move |p: AgentProgress| match p {
        AgentProgress::ToolUse { summary, .. } => tracing::info!(task = id, %phase, "{summary}"),
        AgentProgress::Text(text) => tracing::debug!(task = id, %phase, "{}", tail(&text, 300)),
        AgentProgress::Started { session_id } => {
            tracing::info!(task = id, %phase, session_id, "agent started")
        }
        AgentProgress::Retrying { attempt, error } => {
            tracing::warn!(task = id, %phase, attempt, "model API retry: {error}")
        }
    });
    let progress = super::output::tee(id, phase, progress);
    let started = std::time::Instant::now();
    let outcome = deps.runner.run(request, progress).await;
    crate::metrics::task_run(started.elapsed(), &outcome);
    if outcome.session_id.is_some() {
        snap.session_id = outcome.session_id.clone();
    }
    snap.cost_usd += outcome.cost_usd.unwrap_or(0.0);
    match outcome.error {
        None => Ok(snap),
        // The sandbox refused or is unreachable: not the agent's failure.
        Some(AgentError::Spawn(why)) => {
            if let Some(gate) = &deps.gate {
                gate.trip(&why);
            }
            Err(stalled(format!("the agent could not start: {why}")))
        }
        // The model API is down or overloaded (the CLI already retried): wait it out
        // rather than spend the task's attempts on an outage.
        Some(AgentError::Api {
            status, message, ..
        }) if status.is_none_or(|s| s == 429 || s >= 500) => {
            Err(stalled(format!("the model API is unavailable: {message}")))
        }
        Some(error) => {
            let what = format!("the {} agent failed: {error}", spec.status);
            let sig = signature(&what);
            snap.feedback = Some(format!("The previous attempt ended early: {error}."));
            if matches!(snap.status, Status::Impl | Status::Rebase) {
                snap.push_signature(sig.clone());
            }
            Err(advance(snap, Event::Missed { signature: sig }, what))
        }
    }
}

fn agent_request(
    deps: &TaskDeps,
    snap: &TaskSnapshot,
    spec: &PhaseSpec,
    wt: &Path,
) -> AgentRequest {
    let s = &deps.settings;
    AgentRequest {
        owner: format!("task-{}", snap.id),
        prompt: super::prompt::render(spec.prompt, snap, &deps.repo.test_cmd),
        model: s.model.clone(),
        resume: snap.session_id.clone().filter(|_| spec.resume_session),
        home: s
            .sessions_dir
            .join(format!("task-{}", snap.id))
            .join("home"),
        workdir: wt.to_path_buf(),
        allowed_tools: spec.tools.iter().map(|t| t.to_string()).collect(),
        system_prompt: spec.persona.map(|p| p.system_prompt().to_owned()),
        max_turns: s.max_turns,
        idle_timeout: s.idle_timeout,
        hard_timeout: s.hard_timeout,
    }
}

pub(super) async fn run_tests(
    deps: &TaskDeps,
    snap: &TaskSnapshot,
    wt: &Path,
) -> Result<TestOutcome, String> {
    let request = TestRequest {
        owner: format!("task-{}", snap.id),
        workdir: wt.to_path_buf(),
        command: deps.repo.test_cmd.clone(),
        timeout: deps.settings.test_timeout,
    };
    pass_gate(deps).await;
    deps.tests.run(request).await.map_err(|e| {
        let why = e.to_string();
        // The test command could not be run at all: the sandbox's fault, like a spawn error.
        if let Some(gate) = &deps.gate {
            gate.trip(&why);
        }
        why
    })
}

/// Waits while the pipeline's sandbox gate is open ([`crate::pipeline::gate`]).
async fn pass_gate(deps: &TaskDeps) {
    if let Some(gate) = &deps.gate
        && let Some(why) = gate.open_reason()
    {
        tracing::info!("waiting for the agent sandbox: {why}");
        gate.closed().await;
    }
}

pub(super) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
