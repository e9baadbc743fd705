//! What a release train needs from git: reading `main` and branches, scratch worktrees to
//! build a release candidate in, merge commits, and moving and pushing `main`.
//!
//! Refs are read with gix; merges, resets, `update-ref` and pushes go through the git CLI
//! ([`super::cli`]). Two invariants hold here:
//!
//! - `main` only ever moves forward, by one compare-and-swap from the commit the caller saw
//!   to a descendant of it: at any moment it is either `from` or `to` of an
//!   [`advance_main`], never a third commit, and never anything a push would need force for;
//! - a scratch worktree is disposable: [`scratch`] may throw away anything in it, so it lives
//!   under its own name in `.worktrees/` and can never be a task's worktree (`task-<id>`).

use std::path::{Component, Path, PathBuf};
use std::sync::PoisonError;
use std::sync::atomic::AtomicBool;

use actors::pipeline::ports::{MergeOutcome, VcsError};
use gix::progress::Discard;
use gix::worktree::add::Head;

use super::worktrees::{self, Checkout};
use super::{GitRepo, MAIN_BRANCH, WORKTREES_DIR, rebase};

/// The remote [`push_main`] prefers when there are several.
const DEFAULT_REMOTE: &str = "origin";

/// [`crate::git::GitRepo`]'s `Vcs::main_head`.
pub fn main_head(repo: &GitRepo) -> Result<String, VcsError> {
    branch_head(repo, MAIN_BRANCH)?
        .ok_or_else(|| repo.err("read main", format!("branch {MAIN_BRANCH} is gone")))
}

/// [`crate::git::GitRepo`]'s `Vcs::branch_head`. Read with a fresh gix handle each time: the
/// CLI moves branches behind a cached one's back.
pub fn branch_head(repo: &GitRepo, branch: &str) -> Result<Option<String>, VcsError> {
    let op = format!("read branch {branch}");
    let name = worktrees::full_branch_name(repo, &op, branch)?;
    let main = repo.gix(&op)?;
    let found = main
        .try_find_reference(name.as_ref())
        .map_err(|e| repo.gix_err(&op, e))?;
    found
        .map(|mut r| r.peel_to_commit().map(|c| c.id.to_string()))
        .transpose()
        .map_err(|e| repo.gix_err(&op, e))
}

/// [`crate::git::GitRepo`]'s `Vcs::in_main`. A commit the repository does not have is an
/// error, not `false`: it cannot be told apart from a typo.
pub fn in_main(repo: &GitRepo, commit: &str) -> Result<bool, VcsError> {
    let op = "check main";
    let main = worktrees::main_checkout(repo, op)?;
    let commit = main.commit(repo, op, commit)?.to_string();
    is_ancestor(repo, op, &main, &commit, &main_head(repo)?)
}

/// [`crate::git::GitRepo`]'s `Vcs::scratch`. The worktree is added detached at `at` (gix),
/// then put on `branch` with `git checkout --force -B`, which refuses a branch another
/// worktree has checked out (`main`, a task's branch) instead of stealing it.
pub fn scratch(
    repo: &GitRepo,
    name: &str,
    branch: Option<&str>,
    at: &str,
) -> Result<PathBuf, VcsError> {
    let op = format!("scratch worktree {name}");
    let path = scratch_path(repo, &op, name)?;
    if let Some(branch) = branch {
        scratch_branch(repo, &op, branch)?;
    }
    let _admin = repo.admin.lock().unwrap_or_else(PoisonError::into_inner);
    let main = worktrees::main_checkout(repo, &op)?;
    let at = main.commit(repo, &op, at)?;
    // A registered worktree is reused (its .git file restored if lost); a folder without a
    // record, or a record without its folder, is cleared away and the worktree added afresh.
    if !worktrees::reuse_registered(repo, &main.repo, &path, &op)? {
        worktrees::discard(repo, &main.repo, &path, &op)?;
        main.repo
            .add_worktree(&path, Head::Detached(at), Discard, &AtomicBool::new(false))
            .map_err(|e| repo.gix_err(&format!("{op}: add worktree {}", path.display()), e))?;
    }
    let co = worktrees::checkout(repo, &path, &op)?;
    rebase::abort_any(repo, &op, &co)?;
    let at = at.to_string();
    let switch = match branch {
        Some(branch) => vec!["checkout", "--force", "--quiet", "-B", branch, &at, "--"],
        None => vec!["checkout", "--force", "--quiet", "--detach", &at, "--"],
    };
    co.git(repo, &op).args(switch).run()?;
    co.git(repo, &op)
        .args(["reset", "--hard", "--quiet"])
        .run()?;
    // -d: untracked folders too; no -x: ignored files (build caches) may stay.
    co.git(repo, &op).args(["clean", "-fd", "--quiet"]).run()?;
    Ok(co.dir)
}

/// [`crate::git::GitRepo`]'s `Vcs::drop_scratch`.
pub fn drop_scratch(repo: &GitRepo, name: &str, branch: Option<&str>) -> Result<(), VcsError> {
    let op = format!("drop scratch worktree {name}");
    let path = scratch_path(repo, &op, name)?;
    let branch = branch.map(|b| scratch_branch(repo, &op, b)).transpose()?;
    let _admin = repo.admin.lock().unwrap_or_else(PoisonError::into_inner);
    worktrees::discard(repo, &repo.gix(&op)?, &path, &op)?;
    if let Some(branch) = branch {
        // Opened again: the worktree just removed must no longer count as checking it out.
        let mut main = repo.gix(&op)?;
        main.delete_local_branches([branch])
            .map_err(|e| repo.gix_err(&format!("{op}: delete its branch"), e))?;
    }
    Ok(())
}

/// [`crate::git::GitRepo`]'s `Vcs::merge`. A branch already contained in HEAD has nothing to
/// merge: git makes no commit and the answer is `Merged` with HEAD as it is.
pub fn merge(
    repo: &GitRepo,
    worktree: &Path,
    branch: &str,
    message: &str,
) -> Result<MergeOutcome, VcsError> {
    let op = format!("merge {branch}");
    let co = worktrees::checkout(repo, worktree, &op)?;
    // The full ref name: never read as an option, a tag or a commit.
    let name = worktrees::full_branch_name(repo, &op, branch)?.to_string();
    let merged = co
        .git(repo, &op)
        .args(["merge", "--no-ff", "--no-edit", "--quiet"])
        .args(["-m", message, &name])
        .run();
    if let Err(failed) = merged {
        // Only a merge that stopped on conflicts leaves MERGE_HEAD; anything else (no such
        // branch, local changes in the way) failed before it started.
        if !co.git_dir.join("MERGE_HEAD").exists() {
            return Err(failed);
        }
        let files = rebase::conflicted(repo, &op, &co)?;
        co.git(repo, &op).args(["merge", "--abort"]).run()?;
        if files.is_empty() {
            return Err(failed);
        }
        return Ok(MergeOutcome::Conflict { files });
    }
    Ok(MergeOutcome::Merged {
        commit: co.head(repo, &op)?.to_string(),
    })
}

/// [`crate::git::GitRepo`]'s `Vcs::reset_hard`.
pub fn reset_hard(repo: &GitRepo, worktree: &Path, commit: &str) -> Result<(), VcsError> {
    let op = "reset";
    let co = worktrees::checkout(repo, worktree, op)?;
    let commit = co.commit(repo, op, commit)?.to_string();
    co.git(repo, op)
        .args(["reset", "--hard", "--quiet", commit.as_str()])
        .run()?;
    co.git(repo, op).args(["clean", "-fd", "--quiet"]).run()?;
    Ok(())
}

/// [`crate::git::GitRepo`]'s `Vcs::advance_main`.
///
/// When the main checkout is on `main` with a clean index and working tree (untracked files
/// do not count), `git merge --ff-only` moves ref and files together; git updates the ref
/// from the HEAD it read, so a main moved meanwhile makes it fail rather than be
/// overwritten. Otherwise, and when that fast-forward fails (an untracked file in the
/// way), `git update-ref main <to> <from>` moves the ref alone, as a compare-and-swap; the
/// checkout's files then stay as they were and a warning says so.
pub fn advance_main(repo: &GitRepo, from: &str, to: &str) -> Result<bool, VcsError> {
    let op = "advance main";
    let main = worktrees::main_checkout(repo, op)?;
    let from = main.commit(repo, op, from)?.to_string();
    let to = main.commit(repo, op, to)?.to_string();
    if !is_ancestor(repo, op, &main, &from, &to)? {
        return Err(repo.err(
            op,
            format!("{to} does not descend from {from}; main only moves forward"),
        ));
    }
    let moved = |tip: &str| {
        repo.err(
            op,
            format!(
                "main moved: it is at {tip}, not at {from} (nor {to}); something else changed \
                 main meanwhile, so the release must be built again on the new main"
            ),
        )
    };
    let tip = main_head(repo)?;
    if tip == to {
        return Ok(false);
    }
    if tip != from {
        return Err(moved(&tip));
    }
    if on_main_and_clean(repo, op, &main)? {
        let tip = main_head(repo)?;
        if tip != from {
            return Err(moved(&tip));
        }
        let forward = main
            .git(repo, op)
            .args(["merge", "--ff-only", "--quiet", to.as_str()])
            .run();
        match forward {
            Ok(_) => return Ok(true),
            Err(e) => tracing::warn!(repo = %repo.name, error = %e,
                "could not fast-forward the main checkout; moving the main ref alone"),
        }
    } else {
        tracing::warn!(repo = %repo.name, path = %repo.path.display(),
            "the main checkout is not on a clean main; moving the main ref alone and leaving \
             its files as they are");
    }
    let reference = format!("refs/heads/{MAIN_BRANCH}");
    main.git(repo, op)
        .args(["update-ref", "-m", "borg: release", &reference, &to, &from])
        .run()?;
    Ok(true)
}

/// [`crate::git::GitRepo`]'s `Vcs::push_main`. Several remotes and none named `origin` is an
/// error: borg does not guess where a release goes.
pub fn push_main(repo: &GitRepo) -> Result<Option<String>, VcsError> {
    let op = "push main";
    let main = worktrees::main_checkout(repo, op)?;
    let names: Vec<String> = main
        .repo
        .remote_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let remote = match names.as_slice() {
        [] => return Ok(None),
        _ if names.iter().any(|n| n == DEFAULT_REMOTE) => DEFAULT_REMOTE.to_owned(),
        [only] => only.clone(),
        several => {
            return Err(repo.err(
                op,
                format!(
                    "the repository has several remotes ({}) and none is called \
                     {DEFAULT_REMOTE}; rename the one releases go to (git remote rename <name> \
                     {DEFAULT_REMOTE})",
                    several.join(", ")
                ),
            ));
        }
    };
    if remote.starts_with('-') {
        return Err(repo.err(op, format!("remote name {remote:?} looks like an option")));
    }
    let refspec = format!("refs/heads/{MAIN_BRANCH}:refs/heads/{MAIN_BRANCH}");
    main.git(repo, op)
        .args(["push", "--quiet", "--no-verify", remote.as_str(), &refspec])
        .run()?;
    Ok(Some(remote))
}

/// Whether `a` is `b` or one of its ancestors (both full commit ids).
fn is_ancestor(
    repo: &GitRepo,
    op: &str,
    co: &Checkout,
    a: &str,
    b: &str,
) -> Result<bool, VcsError> {
    let ask = co.git(repo, op).args(["merge-base", "--is-ancestor", a, b]);
    let (_, code) = ask.run_allowing(&[0, 1])?;
    Ok(code == 0)
}

/// Whether the main checkout has `main` checked out with nothing staged or modified.
fn on_main_and_clean(repo: &GitRepo, op: &str, main: &Checkout) -> Result<bool, VcsError> {
    let head = main.repo.head_name().map_err(|e| repo.gix_err(op, e))?;
    if head.is_none_or(|name| name.as_bstr() != format!("refs/heads/{MAIN_BRANCH}").as_str()) {
        return Ok(false);
    }
    let status = main
        .git(repo, op)
        .args(["status", "--porcelain", "-z", "--untracked-files=no"])
        .run()?;
    Ok(status.stdout.is_empty())
}

/// `<repo>/.worktrees/<name>` for a plain name: one path component, no `.` or `..`, not a
/// task's worktree name (`task-<digits>`), whose work a reset would destroy.
fn scratch_path(repo: &GitRepo, op: &str, name: &str) -> Result<PathBuf, VcsError> {
    let mut parts = Path::new(name).components();
    let plain = matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    ) && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.');
    let task = name
        .strip_prefix("task-")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    if !plain || task {
        return Err(repo.err(
            op,
            format!(
                "scratch name {name:?} must be a single plain folder name (no /, no leading ., \
                 not task-<id>)"
            ),
        ));
    }
    Ok(repo.path.join(WORKTREES_DIR).join(name))
}

/// `refs/heads/<branch>` for a scratch branch: never `main`, which a scratch worktree must not
/// reset or delete.
fn scratch_branch(repo: &GitRepo, op: &str, branch: &str) -> Result<gix::refs::FullName, VcsError> {
    if branch == MAIN_BRANCH || branch.starts_with('-') {
        return Err(repo.err(
            op,
            format!("{branch:?} cannot be a scratch worktree's branch"),
        ));
    }
    worktrees::full_branch_name(repo, op, branch)
}
