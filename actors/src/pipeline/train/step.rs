//! One step of a release train, run beside the train actor's mailbox.
//!
//! A step reads the saved [`TrainRun`], does the next piece of work and returns the updated
//! run; the actor saves it before the next step starts. Every step is idempotent given the
//! saved run: after a crash the step that was under way runs again from what was saved.
//! That is what keeps `main` whole:
//!
//! - merges happen only on the `release-candidate` branch, which every merging step first
//!   resets to the saved candidate, so a merge made but not saved is discarded and redone;
//! - `main` moves once, from `main_before` to the finished candidate, as a compare-and-swap
//!   of the ref ([`Vcs::advance_main`]); a repeat finds it moved already;
//! - telling the tasks is idempotent on their side ([`TaskMsg::Release`]).

use std::sync::Arc;

use ractor::ActorRef;

use super::TrainDeps;
use super::state::{CANDIDATE, Digest, Entry, Outcome, Stage, TrainRun, short};
use crate::failpoint::failpoint;
use crate::pipeline::ports::{MergeOutcome, TestRequest};
use crate::pipeline::repo::{RepoMsg, repo_actor_name};
use crate::pipeline::task::state::tail;
use crate::pipeline::task::{TaskMsg, Verdict};

/// What a step produced.
#[derive(Debug)]
pub enum StepResult {
    /// Save the run and take the next step.
    Next(TrainRun),
    /// The train is over.
    Finished(Digest),
    /// Nothing changed that counts (the sandbox, git or a task did not answer): try again.
    Stalled(String),
    /// The train is given up (`main` moved under it) and its candidate dropped; the
    /// branches stay queued for the next train.
    Abandoned(String),
}

use crate::pipeline::ports::git;

pub async fn run(deps: Arc<TrainDeps>, run: TrainRun) -> StepResult {
    match run.stage {
        Stage::Merging => merging(&deps, run).await,
        Stage::Landing => landing(&deps, run).await,
        Stage::Pushing => pushing(&deps, run).await,
        Stage::Reporting => reporting(&deps, run).await,
    }
}

/// Decides the next queued branch: merged (and tested) into the candidate, or excluded.
async fn merging(deps: &TrainDeps, mut run: TrainRun) -> StepResult {
    let Some(i) = run.entries.iter().position(|e| e.outcome.is_none()) else {
        let any = run
            .entries
            .iter()
            .any(|e| matches!(e.outcome, Some(Outcome::Merged { .. })));
        run.stage = if any {
            Stage::Landing
        } else {
            Stage::Reporting
        };
        return StepResult::Next(run);
    };
    let vcs = &deps.repo.vcs;
    let at = run.candidate.clone();
    let wt = match git(vcs, move |v| v.scratch(CANDIDATE, Some(CANDIDATE), &at)).await {
        Ok(wt) => wt,
        Err(e) => return StepResult::Stalled(format!("could not set up the candidate: {e}")),
    };
    failpoint("train:candidate").await;
    let entry = run.entries[i].clone();
    let branch = entry.branch.clone();
    let head = match git(vcs, move |v| v.branch_head(&branch)).await {
        Ok(head) => head,
        Err(e) => return StepResult::Stalled(format!("could not read {}: {e}", entry.branch)),
    };
    let Some(head) = head else {
        run.entries[i].outcome = Some(excluded(format!("its branch {} is gone", entry.branch)));
        return StepResult::Next(run);
    };
    let commit = head.clone();
    match git(vcs, move |v| v.in_main(&commit)).await {
        // Released already (by a person, or before a lost save): nothing to merge.
        Ok(true) => {
            run.entries[i].outcome = Some(Outcome::Merged { commit: head });
            return StepResult::Next(run);
        }
        Ok(false) => {}
        Err(e) => return StepResult::Stalled(format!("could not compare with main: {e}")),
    }
    let (path, branch) = (wt.clone(), entry.branch.clone());
    let message = format!("Merge task #{}: {}", entry.task, entry.title);
    let merged = match git(vcs, move |v| v.merge(&path, &branch, &message)).await {
        Ok(MergeOutcome::Merged { commit }) => commit,
        Ok(MergeOutcome::Conflict { files }) => {
            let reason = format!("it conflicts with main in {}", files.join(", "));
            run.entries[i].outcome = Some(excluded(reason));
            return StepResult::Next(run);
        }
        Err(e) => return StepResult::Stalled(format!("could not merge {}: {e}", entry.branch)),
    };
    failpoint("train:merged").await;
    let request = TestRequest {
        owner: format!("train-{}", deps.repo.name),
        workdir: wt,
        command: deps.repo.test_cmd.clone(),
        timeout: deps.settings.test_timeout,
    };
    let outcome = match deps.tests.run(request).await {
        Ok(outcome) => outcome,
        Err(e) => return StepResult::Stalled(format!("could not run the tests: {e}")),
    };
    failpoint("train:tested").await;
    run.entries[i].outcome = Some(if outcome.passed {
        run.candidate = merged.clone();
        Outcome::Merged { commit: merged }
    } else {
        let last = tail(outcome.output_tail.trim_end(), 300);
        let last = last.lines().last().unwrap_or("").trim();
        excluded(format!(
            "`{}` fails after merging it (exit {:?}): {last}",
            deps.repo.test_cmd, outcome.exit_code
        ))
    });
    StepResult::Next(run)
}

fn excluded(reason: String) -> Outcome {
    Outcome::Excluded { reason }
}

/// Moves `main` to the candidate, in one compare-and-swap.
async fn landing(deps: &TrainDeps, mut run: TrainRun) -> StepResult {
    let (from, to) = (run.main_before.clone(), run.candidate.clone());
    match git(&deps.repo.vcs, move |v| v.advance_main(&from, &to)).await {
        Ok(_) => {
            failpoint("train:landed").await;
            run.stage = Stage::Pushing;
            StepResult::Next(run)
        }
        Err(e) => {
            let _ = git(&deps.repo.vcs, |v| {
                v.drop_scratch(CANDIDATE, Some(CANDIDATE))
            })
            .await;
            StepResult::Abandoned(format!("main could not move to the candidate: {e}"))
        }
    }
}

/// Pushes `main` when the repository has a remote; a failed push is reported, not retried
/// here (the next train pushes again).
async fn pushing(deps: &TrainDeps, mut run: TrainRun) -> StepResult {
    run.pushed = Some(
        git(&deps.repo.vcs, |v| v.push_main())
            .await
            .map_err(|e| e.to_string()),
    );
    run.stage = Stage::Reporting;
    StepResult::Next(run)
}

/// Tells every task its verdict, deletes the merged branches and the candidate, and sums up.
async fn reporting(deps: &TrainDeps, run: TrainRun) -> StepResult {
    let vcs = &deps.repo.vcs;
    let mut digest = Digest {
        number: run.number,
        started_ms: run.started_ms,
        finished_ms: supervisors::snapshot::now_ms(),
        main: run.main_before.clone(),
        merged: Vec::new(),
        excluded: Vec::new(),
        pushed: run.pushed.clone(),
    };
    for Entry {
        task,
        title,
        outcome,
        ..
    } in &run.entries
    {
        let verdict = match outcome {
            Some(Outcome::Merged { commit }) => Verdict::Merged {
                commit: commit.clone(),
            },
            Some(Outcome::Excluded { reason }) => Verdict::Excluded {
                reason: reason.clone(),
            },
            None => continue,
        };
        match tell(&deps.repo.name, *task, verdict.clone()).await {
            Ok(Ok(())) => {}
            // The task moved on meanwhile (cancelled): nothing to tell it any more.
            Ok(Err(why)) => {
                tracing::warn!(repo = %deps.repo.name, task, "verdict not applied: {why}")
            }
            Err(why) => return StepResult::Stalled(why),
        }
        match verdict {
            Verdict::Merged { .. } => {
                let id = *task;
                if let Err(e) = git(vcs, move |v| v.remove(id, true)).await {
                    tracing::warn!(repo = %deps.repo.name, task, "could not delete the merged branch: {e}");
                }
                digest.merged.push((*task, title.clone()));
            }
            Verdict::Excluded { reason } => digest.excluded.push((*task, title.clone(), reason)),
        }
    }
    if let Err(e) = git(vcs, |v| v.drop_scratch(CANDIDATE, Some(CANDIDATE))).await {
        tracing::warn!(repo = %deps.repo.name, "could not delete the candidate: {e}");
    }
    match git(vcs, |v| v.main_head()).await {
        Ok(main) => digest.main = main,
        Err(e) => return StepResult::Stalled(format!("could not read main: {e}")),
    }
    tracing::info!(repo = %deps.repo.name, train = run.number, main = short(&digest.main),
        merged = digest.merged.len(), excluded = digest.excluded.len(), "release train finished");
    StepResult::Finished(digest)
}

/// Gives task `task` its verdict through the repository actor. `Err`: nobody answered
/// (try again later); `Ok(Err)`: the task refused it (it is no longer done).
async fn tell(repo: &str, task: u64, verdict: Verdict) -> Result<Result<(), String>, String> {
    let repo_ref: ActorRef<RepoMsg> = ractor::registry::where_is(repo_actor_name(repo))
        .ok_or_else(|| format!("the repository actor of {repo} is not running"))?
        .into();
    let task_ref = ractor::call_t!(repo_ref, RepoMsg::Task, 5_000, task)
        .map_err(|e| format!("the repository actor did not answer: {e}"))?
        .ok_or_else(|| format!("task #{task} is not running"))?;
    ractor::call_t!(task_ref, TaskMsg::Release, 10_000, verdict)
        .map_err(|e| format!("task #{task} did not answer: {e}"))
}
