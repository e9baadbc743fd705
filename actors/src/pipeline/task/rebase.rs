//! The rebase phase: a release train left the task's branch out (it conflicts with `main` or
//! breaks the tests there), so the branch is rebased onto the new `main` and tested again.
//!
//! borg runs the rebase itself, in the task's worktree; agents never run git (in containers
//! the repository's `.git` is not even mounted). At each commit where the rebase stops on a
//! conflict, the worker resolves the conflicting files in the working tree, borg checks that
//! no conflict marker is left and continues. When the rebase is through, borg runs the test
//! command: passing puts the task back in the release queue (`done`); failing sends it to the
//! worker like a failed test phase.
//!
//! A rebase the step cannot finish is aborted before the miss is reported, so the branch is
//! never left half-rebased for the next phase. A stall (sandbox or model API unavailable)
//! leaves the rebase under way: the step runs again after a restart too, and
//! [`Vcs::rebase`](crate::pipeline::ports::Vcs::rebase) then reports where it stopped.

use std::path::Path;
use std::sync::Arc;

use super::TaskDeps;
use super::state::{FAILURE_TAIL_BYTES, TaskSnapshot, signature, tail};
use super::work::{
    StepResult, advance, git, phase_turn, run_agent, run_tests, short, stalled, worktree,
};
use crate::pipeline::phase::{Event, Status};
use crate::pipeline::ports::RebaseOutcome;

/// Most conflicting commits one rebase resolves before it gives up.
const MAX_STOPS: usize = 20;

pub(super) async fn run(deps: &Arc<TaskDeps>, mut snap: TaskSnapshot) -> StepResult {
    let Some(spec) = Status::Rebase.spec() else {
        return stalled("no rebase phase");
    };
    let wt = match worktree(deps, &snap).await {
        Ok(wt) => wt,
        Err(stall) => return stall,
    };
    let _turn = phase_turn(deps, Status::Rebase).await;
    let main = match git(&deps.repo.vcs, |v| v.main_head()).await {
        Ok(main) => main,
        Err(e) => return stalled(format!("could not read main: {e}")),
    };
    let (path, onto) = (wt.clone(), main.clone());
    let mut stop = match git(&deps.repo.vcs, move |v| v.rebase(&path, &onto)).await {
        Ok(stop) => stop,
        Err(e) => return stalled(format!("could not start the rebase: {e}")),
    };
    for _ in 0..MAX_STOPS {
        let files = match stop {
            RebaseOutcome::Done { head } => return tested(deps, snap, &wt, &main, &head).await,
            RebaseOutcome::Conflict { files } => files,
        };
        snap.conflicts = files.clone();
        snap = match run_agent(deps, snap, spec, &wt).await {
            Ok(snap) => snap,
            Err(miss @ StepResult::Advance { .. }) => return abort_then(deps, &wt, miss).await,
            Err(stall) => return stall,
        };
        let left = markers_left(&wt, &files);
        if !left.is_empty() {
            let what = format!("conflict markers are left in {}", left.join(", "));
            snap.feedback = Some(format!(
                "Your previous rebase left conflict markers in {}. Resolve every conflict.",
                left.join(", ")
            ));
            return abort_then(deps, &wt, missed(snap, what)).await;
        }
        let path = wt.clone();
        stop = match git(&deps.repo.vcs, move |v| v.rebase_continue(&path)).await {
            Ok(stop) => stop,
            Err(e) => {
                let what = format!("the rebase could not continue: {e}");
                return abort_then(deps, &wt, missed(snap, what)).await;
            }
        };
    }
    let what = format!("the rebase stopped at more than {MAX_STOPS} conflicting commits");
    abort_then(deps, &wt, missed(snap, what)).await
}

/// The rebase is through: the branch passes the tests on the new `main`, or goes back to
/// the worker with the failing output.
async fn tested(
    deps: &TaskDeps,
    mut snap: TaskSnapshot,
    wt: &Path,
    main: &str,
    head: &str,
) -> StepResult {
    snap.conflicts.clear();
    let outcome = match run_tests(deps, &snap, wt).await {
        Ok(outcome) => outcome,
        Err(e) => return stalled(format!("could not run the tests: {e}")),
    };
    snap.base = Some(main.to_owned());
    let cmd = &deps.repo.test_cmd;
    if outcome.passed {
        snap.feedback = None;
        let note = format!(
            "rebased onto main {} ({}); `{cmd}` passes",
            short(main),
            short(head)
        );
        return advance(snap, Event::Passed, note);
    }
    let output = tail(&outcome.output_tail, FAILURE_TAIL_BYTES);
    snap.feedback = Some(format!(
        "The branch was rebased onto the new main and the tests fail there. The end of the \
         test output:\n```\n{output}\n```\nFix the implementation so the tests pass."
    ));
    missed(snap, format!("`{cmd}` fails after the rebase onto main"))
}

fn missed(mut snap: TaskSnapshot, what: String) -> StepResult {
    let sig = signature(&what);
    snap.push_signature(sig.clone());
    advance(snap, Event::Missed { signature: sig }, what)
}

/// Aborts the rebase under way, then reports `result`; stalls if even the abort fails (the
/// next step finds the rebase still under way and carries on from there).
async fn abort_then(deps: &TaskDeps, wt: &Path, result: StepResult) -> StepResult {
    let path = wt.to_path_buf();
    match git(&deps.repo.vcs, move |v| v.rebase_abort(&path)).await {
        Ok(()) => result,
        Err(e) => stalled(format!("could not abort the rebase: {e}")),
    }
}

/// The files among `files` that still hold a conflict marker line.
fn markers_left(wt: &Path, files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| {
            std::fs::read(wt.join(f)).is_ok_and(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .any(|l| l.starts_with("<<<<<<< ") || l.starts_with(">>>>>>> "))
            })
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_only_in_files_that_hold_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a"),
            "x\n<<<<<<< HEAD\ny\n=======\nz\n>>>>>>> t\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b"), "Title\n=======\nresolved\n").unwrap();
        let files = vec!["a".to_owned(), "b".to_owned(), "gone".to_owned()];
        assert_eq!(markers_left(dir.path(), &files), ["a"]);
    }
}
