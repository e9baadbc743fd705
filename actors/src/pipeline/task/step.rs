//! One step of a task: the work of its current phase, run outside the actor's mailbox.
//!
//! A step works on a copy of the snapshot and returns it with the [`Event`] it produced; the
//! actor then applies the transition and saves. A step that could not run at all (the
//! sandbox is unreachable) is [`StepResult::Stalled`]: nothing is counted and the copy is
//! dropped, so infrastructure trouble never burns a task's attempts.

use std::path::Path;
use std::sync::Arc;

use super::TaskDeps;
use super::state::{FAILURE_TAIL_BYTES, TaskSnapshot, signature, tail};
pub use super::work::StepResult;
use super::work::{advance, git, phase_turn, run_agent, run_tests, short, stalled, worktree};
use crate::pipeline::phase::{Artifact, Event, Status};

/// Runs the step of `snap.status`. The result carries the branch head as the next phase's
/// base ([`TaskSnapshot::phase_base`]).
pub async fn run(deps: Arc<TaskDeps>, snap: TaskSnapshot) -> StepResult {
    let result = match snap.status {
        Status::Backlog => prepare(&deps, snap).await,
        Status::Spec | Status::Qa | Status::Impl => agent_phase(&deps, snap).await,
        Status::Test => test_phase(&deps, snap).await,
        Status::Rebase => super::rebase::run(&deps, snap).await,
        // The actor handles these without a step.
        Status::Retry | Status::Done | Status::Merged | Status::Failed | Status::Blocked => {
            stalled(format!("no step for status {}", snap.status))
        }
    };
    match result {
        StepResult::Advance {
            mut snap,
            event,
            note,
        } => {
            let Some(wt) = snap.worktree.clone() else {
                return stalled("the task has no worktree yet");
            };
            match git(&deps.repo.vcs, move |v| v.head(&wt)).await {
                Ok(head) => {
                    snap.phase_base = Some(head);
                    StepResult::Advance { snap, event, note }
                }
                Err(e) => stalled(format!("could not read the branch head: {e}")),
            }
        }
        stall => stall,
    }
}

async fn prepare(deps: &TaskDeps, mut snap: TaskSnapshot) -> StepResult {
    let id = snap.id;
    match git(&deps.repo.vcs, move |v| v.prepare(id)).await {
        Ok(wt) => {
            let note = format!("branch {} and its worktree are ready", wt.branch);
            snap.worktree = Some(wt.path);
            snap.branch = Some(wt.branch);
            snap.base = Some(wt.base);
            advance(snap, Event::Prepared, note)
        }
        Err(e) => stalled(format!("could not prepare the branch: {e}")),
    }
}

async fn agent_phase(deps: &TaskDeps, snap: TaskSnapshot) -> StepResult {
    let Some(spec) = snap.status.spec() else {
        return stalled("not an agent phase");
    };
    let wt = match worktree(deps, &snap).await {
        Ok(wt) => wt,
        Err(stall) => return stall,
    };
    let _turn = phase_turn(deps, snap.status).await;
    let snap = match run_agent(deps, snap, spec, &wt).await {
        Ok(snap) => snap,
        Err(early) => return early,
    };
    match spec.artifact {
        Artifact::SpecFile => check_spec(deps, snap, &wt).await,
        Artifact::RedTests => check_red_tests(deps, snap, &wt).await,
        Artifact::Commit => check_commit(deps, snap, &wt).await,
        Artifact::GreenTests => stalled("green tests are checked by the test phase"),
        Artifact::Rebased => stalled("rebases are checked by the rebase phase"),
    }
}

async fn check_spec(deps: &TaskDeps, mut snap: TaskSnapshot, wt: &Path) -> StepResult {
    let file = wt.join(snap.spec_file());
    let written = tokio::fs::read_to_string(&file).await.unwrap_or_default();
    if written.trim().is_empty() {
        let what = format!("the manager left no spec at {}", snap.spec_file());
        snap.feedback = Some(format!("You did not write {}. Write it.", snap.spec_file()));
        let signature = signature(&what);
        return advance(snap, Event::Missed { signature }, what);
    }
    let (path, message) = (wt.to_path_buf(), format!("spec: {}", snap.task.title));
    match git(&deps.repo.vcs, move |v| v.commit_all(&path, &message)).await {
        Ok(_) => {
            snap.feedback = None;
            advance(snap, Event::Passed, "spec written and committed")
        }
        Err(e) => stalled(format!("could not commit the spec: {e}")),
    }
}

async fn check_red_tests(deps: &TaskDeps, mut snap: TaskSnapshot, wt: &Path) -> StepResult {
    // Since the phase began, so tests this phase committed before a crash still count.
    let (path, base) = (wt.to_path_buf(), snap.phase_base.clone());
    let changed = match git(&deps.repo.vcs, move |v| {
        let base = match base {
            Some(base) => base,
            None => v.head(&path)?,
        };
        v.changed_files(&path, &base)
    })
    .await
    {
        Ok(changed) => changed,
        Err(e) => return stalled(format!("could not list the QA changes: {e}")),
    };
    let spec_file = snap.spec_file();
    let tests: Vec<String> = changed.into_iter().filter(|f| *f != spec_file).collect();
    if tests.is_empty() {
        let what = "the QA agent wrote no tests".to_owned();
        snap.feedback = Some("You wrote no test files. Write the tests.".into());
        return advance(
            snap,
            Event::Missed {
                signature: signature(&what),
            },
            what,
        );
    }
    let outcome = match run_tests(deps, &snap, wt).await {
        Ok(outcome) => outcome,
        Err(e) => return stalled(format!("could not run the tests: {e}")),
    };
    if outcome.passed {
        let what = "the new tests pass before the implementation exists; they must fail first";
        snap.feedback = Some(format!(
            "Your tests passed although the feature does not exist yet, so they do not \
             test it. Make them check the acceptance criteria so that they fail now.\n\
             Test output:\n{}",
            tail(&outcome.output_tail, FAILURE_TAIL_BYTES)
        ));
        return advance(
            snap,
            Event::Missed {
                signature: signature(what),
            },
            what,
        );
    }
    let (path, files, message) = (
        wt.to_path_buf(),
        tests.clone(),
        format!("tests: {}", snap.task.title),
    );
    let committed = git(&deps.repo.vcs, move |v| {
        v.commit_all(&path, &message)?;
        Ok((v.head(&path)?, v.hash_files(&path, &files)?))
    })
    .await;
    match committed {
        Ok((commit, hash)) => {
            let note = format!(
                "{} test file(s) written; they fail (red) as they must",
                tests.len()
            );
            snap.qa_files = tests;
            snap.qa_hash = Some(hash);
            snap.qa_commit = Some(commit);
            snap.feedback = None;
            advance(snap, Event::Passed, note)
        }
        Err(e) => stalled(format!("could not commit the tests: {e}")),
    }
}

async fn check_commit(deps: &TaskDeps, mut snap: TaskSnapshot, wt: &Path) -> StepResult {
    let (path, files, frozen_hash, qa_commit) = (
        wt.to_path_buf(),
        snap.qa_files.clone(),
        snap.qa_hash.clone(),
        snap.qa_commit.clone(),
    );
    let message = format!("impl: {} (attempt {})", snap.task.title, snap.impl_attempts);
    let base = snap.phase_base.clone();
    let result = git(&deps.repo.vcs, move |v| {
        // The QA tests are frozen: edits to them are undone before anything is committed.
        let touched = match (&frozen_hash, &qa_commit) {
            (Some(hash), Some(commit)) if v.hash_files(&path, &files)? != *hash => {
                v.restore(&path, commit, &files)?;
                true
            }
            _ => false,
        };
        v.commit_all(&path, &message)?;
        // New work is a head past the phase's base: a commit made now, or one made before a
        // crash (or by the agent itself) that this re-run must not mistake for no work.
        let head = v.head(&path)?;
        let moved = base.as_deref().is_none_or(|b| b != head);
        Ok((touched, moved.then_some(head)))
    })
    .await;
    let (restored, commit) = match result {
        Ok(r) => r,
        Err(e) => return stalled(format!("could not commit the implementation: {e}")),
    };
    let restored_note = if restored {
        " You changed the QA tests; they are frozen and were restored. Change the code, \
         not the tests."
    } else {
        ""
    };
    match commit {
        Some(commit) => {
            snap.feedback = (!restored_note.is_empty()).then(|| restored_note.trim().to_owned());
            let note = format!("implementation committed ({})", short(&commit));
            let note = if restored {
                format!("{note}; the QA tests it changed were restored")
            } else {
                note
            };
            advance(snap, Event::Passed, note)
        }
        None => {
            let what = "the worker made no change (no commit)".to_owned();
            snap.feedback = Some(format!(
                "Your previous attempt changed nothing, so nothing was committed. \
                 Implement the specification.{restored_note}"
            ));
            snap.push_signature(signature(&what));
            advance(
                snap,
                Event::Missed {
                    signature: signature(&what),
                },
                what,
            )
        }
    }
}

async fn test_phase(deps: &TaskDeps, mut snap: TaskSnapshot) -> StepResult {
    let wt = match worktree(deps, &snap).await {
        Ok(wt) => wt,
        Err(stall) => return stall,
    };
    let _turn = phase_turn(deps, Status::Test).await;
    let outcome = match run_tests(deps, &snap, &wt).await {
        Ok(outcome) => outcome,
        Err(e) => return stalled(format!("could not run the tests: {e}")),
    };
    let path = wt.clone();
    let head = match git(&deps.repo.vcs, move |v| v.head(&path)).await {
        Ok(head) => head,
        Err(e) => return stalled(format!("could not read the branch head: {e}")),
    };
    let moved = snap.qa_commit.as_deref() != Some(head.as_str());
    if outcome.passed && moved {
        snap.feedback = None;
        let note = format!("`{}` passed at {}", deps.repo.test_cmd, short(&head));
        return advance(snap, Event::Passed, note);
    }
    let what = if outcome.passed {
        "the tests pass but the branch has no commit after the QA tests".to_owned()
    } else if outcome.timed_out {
        format!("`{}` timed out", deps.repo.test_cmd)
    } else {
        format!(
            "`{}` failed (exit {:?})",
            deps.repo.test_cmd, outcome.exit_code
        )
    };
    let output = tail(&outcome.output_tail, FAILURE_TAIL_BYTES);
    let sig = signature(&format!("{what}\n{output}"));
    snap.push_signature(sig.clone());
    snap.feedback = Some(format!(
        "The previous attempt failed: {what}. The end of the test output:\n```\n{output}\n```\n\
         Fix the implementation so the tests pass."
    ));
    advance(snap, Event::Missed { signature: sig }, what)
}
