//! Rebasing a task's branch onto a newer `main`, through the git CLI: [`rebase`],
//! [`rebase_continue`], [`rebase_abort`]; and what merges share with rebases: the
//! [`conflicted`] paths of a stopped one, [`abort_any`] one left under way.
//!
//! git never waits for anyone here: the editors are `true` (each commit keeps its message),
//! auto-stash, auto-squash and `--update-refs` are off whatever the user's configuration says.
//!
//! Invariant: borg leaves a rebase under way only where it stopped on conflicts. A rebase that
//! stops for any other reason (an untracked file in the way, a commit git cannot apply) is
//! aborted at once and reported as an error with git's words. So a rebase found under way
//! without unmerged paths is one whose conflicts were resolved and staged before a crash, and
//! it is continued; and a conflict resolved into no change at all (the commit is already in
//! `main`) is skipped with `git rebase --skip` instead of failing on an empty commit.

use std::path::Path;

use actors::pipeline::ports::{RebaseOutcome, VcsError};

use super::GitRepo;
use super::cli::{GitCall, nul_separated};
use super::worktrees::{self, Checkout};

/// [`crate::git::GitRepo`]'s `Vcs::rebase`. A rebase already under way (a restart) is not
/// started again: with unmerged paths it answers `Conflict` with them (resolved in the
/// working tree or not: git cannot tell, the caller checks); without, it is continued as
/// [`rebase_continue`] would, since its resolution was staged already. Either way `onto` is
/// not looked at: the rebase under way keeps the commit it started onto.
pub fn rebase(repo: &GitRepo, worktree: &Path, onto: &str) -> Result<RebaseOutcome, VcsError> {
    let op = "rebase";
    let co = worktrees::checkout(repo, worktree, op)?;
    if under_way(&co) {
        let files = conflicted(repo, op, &co)?;
        if !files.is_empty() {
            return Ok(RebaseOutcome::Conflict { files });
        }
        return continue_under_way(repo, &co);
    }
    // Resolved by gix first, so git only ever sees a full commit id (never an option).
    let onto = co.commit(repo, op, onto)?.to_string();
    let started = rebase_git(repo, op, &co)
        .args(["rebase", "--quiet", onto.as_str()])
        .run();
    settle(repo, op, &co, started)
}

/// [`crate::git::GitRepo`]'s `Vcs::rebase_continue`. Without a rebase under way (it finished
/// before a crash, or was never stopped) the answer is `Done` with the worktree's HEAD.
pub fn rebase_continue(repo: &GitRepo, worktree: &Path) -> Result<RebaseOutcome, VcsError> {
    let op = "continue rebase";
    let co = worktrees::checkout(repo, worktree, op)?;
    if !under_way(&co) {
        return Ok(RebaseOutcome::Done {
            head: co.head(repo, op)?.to_string(),
        });
    }
    continue_under_way(repo, &co)
}

/// [`crate::git::GitRepo`]'s `Vcs::rebase_abort`.
pub fn rebase_abort(repo: &GitRepo, worktree: &Path) -> Result<(), VcsError> {
    let op = "abort rebase";
    let co = worktrees::checkout(repo, worktree, op)?;
    if under_way(&co) {
        rebase_git(repo, op, &co)
            .args(["rebase", "--abort"])
            .run()?;
    }
    Ok(())
}

/// Whether a rebase is under way in the working tree: git keeps its state in the working
/// tree's own git directory (`<common>/worktrees/<name>/` for a linked worktree).
pub fn under_way(co: &Checkout) -> bool {
    co.git_dir.join("rebase-merge").is_dir() || co.git_dir.join("rebase-apply").is_dir()
}

/// Paths with unmerged entries in the index, sorted.
pub fn conflicted(repo: &GitRepo, op: &str, co: &Checkout) -> Result<Vec<String>, VcsError> {
    let out = co
        .git(repo, op)
        .args(["diff", "--name-only", "-z", "--diff-filter=U"])
        .run()?;
    let mut files: Vec<String> = nul_separated(&out.stdout).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Aborts a rebase or merge left under way (in a scratch worktree). An abort git refuses (its
/// state damaged) is not fatal: the rebase state is dropped with `--quit`, and the hard reset
/// that follows clears a merge's.
pub fn abort_any(repo: &GitRepo, op: &str, co: &Checkout) -> Result<(), VcsError> {
    if under_way(co)
        && let Err(e) = co.git(repo, op).args(["rebase", "--abort"]).run()
    {
        tracing::warn!(repo = %repo.name, error = %e, "dropping the rebase state instead");
        co.git(repo, op).args(["rebase", "--quit"]).run()?;
    }
    if co.git_dir.join("MERGE_HEAD").exists()
        && let Err(e) = co.git(repo, op).args(["merge", "--abort"]).run()
    {
        tracing::warn!(repo = %repo.name, error = %e, "the hard reset clears the merge instead");
    }
    Ok(())
}

/// Stages everything and goes on with the rebase under way, skipping the stopped commit when
/// its resolution leaves nothing to commit.
fn continue_under_way(repo: &GitRepo, co: &Checkout) -> Result<RebaseOutcome, VcsError> {
    let op = "continue rebase";
    // -A: the resolutions, and files the resolution deleted or added.
    co.git(repo, op).args(["add", "--all"]).run()?;
    let (_, code) = co
        .git(repo, op)
        .args(["diff", "--cached", "--quiet", "--no-ext-diff"])
        .run_allowing(&[0, 1])?;
    let step = if code == 0 { "--skip" } else { "--continue" };
    let stepped = rebase_git(repo, op, co).args(["rebase", step]).run();
    settle(repo, op, co, stepped)
}

/// Where the rebase stands after a git rebase command that ended with `result`: finished
/// (`Done`), stopped on conflicts (`Conflict`), or stopped otherwise: aborted, and an error.
fn settle(
    repo: &GitRepo,
    op: &str,
    co: &Checkout,
    result: Result<std::process::Output, VcsError>,
) -> Result<RebaseOutcome, VcsError> {
    if !under_way(co) {
        // Refused to start (local changes), or finished.
        result?;
        return Ok(RebaseOutcome::Done {
            head: co.head(repo, op)?.to_string(),
        });
    }
    let files = conflicted(repo, op, co)?;
    if !files.is_empty() {
        return Ok(RebaseOutcome::Conflict { files });
    }
    let why = match result {
        Err(e) => e.0,
        Ok(_) => format!(
            "repository {}: {op}: git rebase stopped without a conflict",
            repo.name
        ),
    };
    rebase_git(repo, op, co).args(["rebase", "--abort"]).run()?;
    Err(VcsError(format!(
        "{why}; the rebase was aborted and the branch is back where it was"
    )))
}

/// A git command of the rebase family, with no editor and none of the options a user's
/// configuration could turn on behind borg's back.
fn rebase_git<'a>(repo: &'a GitRepo, op: &'a str, co: &Checkout) -> GitCall<'a> {
    co.git(repo, op)
        .env("GIT_EDITOR", "true")
        .env("GIT_SEQUENCE_EDITOR", "true")
        .args(["-c", "core.editor=true", "-c", "sequence.editor=true"])
        .args([
            "-c",
            "rebase.autoStash=false",
            "-c",
            "rebase.autoSquash=false",
        ])
        .args(["-c", "rebase.updateRefs=false"])
}
