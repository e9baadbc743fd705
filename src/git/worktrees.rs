//! Task branches and worktrees through gix: [`prepare`] (idempotent, repairs what a crash or a
//! hand left behind), [`remove`], and [`checkout`], which turns a caller's worktree path into
//! the repository's own record of it before anything runs there. `release` reuses the repair
//! ([`reuse_registered`], [`discard`]) for its scratch worktrees.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::atomic::AtomicBool;

use actors::pipeline::ports::{VcsError, Worktree};
use gix::progress::Discard;
use gix::refs::transaction::PreviousValue;
use gix::worktree::add::Head;
use gix::worktree::remove::Force;

use super::cli::{self, GitCall};
use super::{GitRepo, MAIN_BRANCH, WORKTREES_DIR};

/// The lock reason git and gix give a worktree record while they add it.
const ADD_IN_PROGRESS: &str = "initializing";

/// What [`exclude_worktrees_dir`] adds to `info/exclude`.
const EXCLUDE_LINE: &str = "/.worktrees/";

/// A working tree of the repository, checked against the repository's records.
pub struct Checkout {
    /// The working tree (canonical).
    pub dir: PathBuf,
    /// Its git directory: the main `.git`, or the worktree's private folder under
    /// `.git/worktrees/`. Taken from the records, never from the worktree's own `.git` file.
    pub git_dir: PathBuf,
    /// gix's handle on it (HEAD, revisions, trees).
    pub repo: gix::Repository,
}

impl Checkout {
    /// The commit HEAD points at.
    pub fn head(&self, owner: &GitRepo, op: &str) -> Result<gix::ObjectId, VcsError> {
        self.repo
            .head_id()
            .map(|id| id.detach())
            .map_err(|e| owner.gix_err(&format!("{op}: HEAD of {}", self.dir.display()), e))
    }

    /// `rev` (a commit id, usually) resolved in this working tree, peeled to a commit.
    pub fn commit(&self, owner: &GitRepo, op: &str, rev: &str) -> Result<gix::ObjectId, VcsError> {
        let what = format!("{op}: resolve {rev:?}");
        let id = self
            .repo
            .rev_parse_single(rev)
            .map_err(|e| owner.gix_err(&what, e))?;
        let commit = id
            .object()
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| owner.gix_err(&what, e))?;
        Ok(commit.id)
    }

    /// A git command on this working tree, under [`cli`]'s rules.
    pub fn git<'a>(&self, owner: &'a GitRepo, op: &'a str) -> GitCall<'a> {
        cli::git(&owner.name, op, &self.git_dir, &self.dir)
    }
}

/// The main checkout, as a [`Checkout`].
pub fn main_checkout(repo: &GitRepo, op: &str) -> Result<Checkout, VcsError> {
    let main = repo.gix(op)?;
    Ok(Checkout {
        dir: repo.path.clone(),
        git_dir: main.git_dir().to_owned(),
        repo: main,
    })
}

/// `worktree` as a working tree of `repo`: the main checkout or one of its registered linked
/// worktrees. Anything else is refused, so no git command ever runs on a folder that merely
/// sits inside the main checkout.
pub fn checkout(repo: &GitRepo, worktree: &Path, op: &str) -> Result<Checkout, VcsError> {
    let dir = worktree.canonicalize().map_err(|e| {
        repo.err(
            op,
            format!("worktree {} cannot be read: {e}", worktree.display()),
        )
    })?;
    let main = repo.gix(op)?;
    if dir == repo.path {
        return Ok(Checkout {
            dir,
            git_dir: main.git_dir().to_owned(),
            repo: main,
        });
    }
    let proxies = main.worktrees().map_err(|e| repo.gix_err(op, e))?;
    for proxy in proxies {
        let Ok(base) = proxy.base() else { continue };
        if base == dir || base.canonicalize().is_ok_and(|b| b == dir) {
            let git_dir = proxy.git_dir().to_owned();
            let linked = proxy
                .into_repo_with_possibly_inaccessible_worktree()
                .map_err(|e| repo.gix_err(op, e))?;
            return Ok(Checkout {
                dir,
                git_dir,
                repo: linked,
            });
        }
    }
    Err(repo.err(
        op,
        format!(
            "{} is not a worktree of this repository (prepare the task first)",
            worktree.display()
        ),
    ))
}

/// [`crate::git::GitRepo`]'s `Vcs::prepare`.
pub fn prepare(repo: &GitRepo, task: u64) -> Result<Worktree, VcsError> {
    let op = format!("prepare task {task}");
    let _admin = repo.admin.lock().unwrap_or_else(PoisonError::into_inner);
    let main = repo.gix(&op)?;
    let path = repo.worktree_path(task);
    let branch = GitRepo::branch_name(task);
    let branch_ref = full_branch_name(repo, &op, &branch)?;
    let main_tip = main
        .find_reference(format!("refs/heads/{MAIN_BRANCH}").as_str())
        .and_then(|mut r| r.peel_to_commit())
        .map_err(|e| repo.gix_err(&format!("{op}: read {MAIN_BRANCH}"), e))?
        .id;

    let existing = main
        .try_find_reference(branch_ref.as_ref())
        .map_err(|e| repo.gix_err(&op, e))?;
    let base = match existing {
        Some(mut reference) => {
            let tip = reference
                .peel_to_commit()
                .map_err(|e| repo.gix_err(&format!("{op}: read {branch}"), e))?
                .id;
            // Where the branch forked from main, also after main moved on or the branch was
            // rebased onto a newer main.
            main.merge_base(main_tip, tip)
                .map_err(|e| repo.gix_err(&format!("{op}: merge base of {branch}"), e))?
                .ok_or_else(|| {
                    repo.err(
                        &op,
                        format!("branch {branch} shares no history with {MAIN_BRANCH}"),
                    )
                })?
                .detach()
        }
        None => {
            main.reference(
                branch_ref.clone(),
                main_tip,
                PreviousValue::MustNotExist,
                format!("branch: Created from {MAIN_BRANCH}"),
            )
            .map_err(|e| repo.gix_err(&format!("{op}: create branch {branch}"), e))?;
            main_tip
        }
    };
    let worktree = Worktree {
        path: path.clone(),
        branch,
        base: base.to_string(),
    };

    if reuse_registered(repo, &main, &path, &op)? {
        return Ok(worktree);
    }
    match std::fs::read_dir(&path).map(|mut entries| entries.next().is_none()) {
        Ok(false) => {
            return Err(repo.err(
                &op,
                format!(
                    "{} exists but is not a registered worktree; move it away",
                    path.display()
                ),
            ));
        }
        Ok(true) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(repo.err(&op, format!("{}: {e}", path.display()))),
    }
    main.add_worktree(
        &path,
        Head::Attached(branch_ref),
        Discard,
        &AtomicBool::new(false),
    )
    .map_err(|e| repo.gix_err(&format!("{op}: add worktree {}", path.display()), e))?;
    Ok(worktree)
}

/// [`crate::git::GitRepo`]'s `Vcs::remove`.
pub fn remove(repo: &GitRepo, task: u64, delete_branch: bool) -> Result<(), VcsError> {
    let op = format!("remove task {task}");
    let _admin = repo.admin.lock().unwrap_or_else(PoisonError::into_inner);
    let path = repo.worktree_path(task);
    discard(repo, &repo.gix(&op)?, &path, &op)?;
    if delete_branch {
        let branch = GitRepo::branch_name(task);
        let name = full_branch_name(repo, &op, &branch)?;
        // Opened again: the worktree just removed must no longer count as checking it out.
        let mut main = repo.gix(&op)?;
        main.delete_local_branches([name])
            .map_err(|e| repo.gix_err(&format!("{op}: delete branch {branch}"), e))?;
    }
    Ok(())
}

/// Whether the worktree registered at `path` can be used as it is. A record whose folder was
/// deleted by hand is pruned (what `git worktree prune` does), and an add that crashed halfway
/// (its record still locked as "initializing", the checkout maybe partial) is undone: either
/// way the caller adds the worktree again. A checkout that lost its `.git` file gets it back.
pub fn reuse_registered(
    repo: &GitRepo,
    main: &gix::Repository,
    path: &Path,
    op: &str,
) -> Result<bool, VcsError> {
    let Some(proxy) = registration(main, path).map_err(|e| repo.gix_err(op, e))? else {
        return Ok(false);
    };
    let half_added = proxy
        .lock_reason()
        .is_some_and(|reason| reason == ADD_IN_PROGRESS);
    if path.is_dir() && !half_added {
        let dot_git = path.join(".git");
        if !dot_git.exists() {
            let link = format!("gitdir: {}\n", proxy.git_dir().display());
            std::fs::write(&dot_git, link)
                .map_err(|e| repo.err(op, format!("restore {}: {e}", dot_git.display())))?;
        }
        clear_stale_index_lock(repo, proxy.git_dir(), op)?;
        return Ok(true);
    }
    discard(repo, main, path, op)?;
    Ok(false)
}

/// Removes the `index.lock` a git process killed in the middle (an agent's, or borg's own
/// at a `kill -9`) left in one of borg's worktrees. Only borg works in its worktrees, and
/// the callers hold the repository's admin lock with nothing of borg's running there, so a
/// lock found now is stale; left alone, every later commit there would fail.
fn clear_stale_index_lock(repo: &GitRepo, git_dir: &Path, op: &str) -> Result<(), VcsError> {
    let lock = git_dir.join("index.lock");
    match std::fs::remove_file(&lock) {
        Ok(()) => {
            tracing::warn!(repo = %repo.name, lock = %lock.display(),
                "removed a stale index.lock from a worktree of borg's");
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(repo.err(op, format!("remove the stale {}: {e}", lock.display()))),
    }
}

/// Removes the worktree at `path`, its changes and its record; gone already is fine. When gix
/// refuses (the checkout's `.git` file is gone or points elsewhere), the folder is deleted by
/// hand and the then stale record pruned.
pub fn discard(
    repo: &GitRepo,
    main: &gix::Repository,
    path: &Path,
    op: &str,
) -> Result<(), VcsError> {
    let registered = registration(main, path).map_err(|e| repo.gix_err(op, e))?;
    let refused = match registered {
        // OverrideLock: our worktrees are never locked on purpose, only by a crashed add.
        Some(proxy) => proxy.remove(Force::OverrideLock, Discard).err(),
        None => None,
    };
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(repo.err(op, format!("delete {}: {e}", path.display()))),
    }
    if let Some(refused) = refused {
        let stale = registration(main, path).map_err(|e| repo.gix_err(op, e))?;
        if let Some(proxy) = stale {
            proxy.remove(Force::OverrideLock, Discard).map_err(|e| {
                repo.err(
                    op,
                    format!(
                        "remove worktree {}: {}; then pruning its record: {}",
                        path.display(),
                        super::gix_message(&refused),
                        super::gix_message(&e)
                    ),
                )
            })?;
        }
    }
    Ok(())
}

/// The record of the linked worktree at `path`, if there is one.
fn registration<'r>(
    main: &'r gix::Repository,
    path: &Path,
) -> Result<Option<gix::worktree::Proxy<'r>>, gix::Error> {
    let wanted = path.canonicalize().ok();
    for proxy in main.worktrees()? {
        let Ok(base) = proxy.base() else { continue };
        if base == path || (wanted.is_some() && base.canonicalize().ok() == wanted) {
            return Ok(Some(proxy));
        }
    }
    Ok(None)
}

pub fn full_branch_name(
    repo: &GitRepo,
    op: &str,
    branch: &str,
) -> Result<gix::refs::FullName, VcsError> {
    gix::refs::FullName::try_from(format!("refs/heads/{branch}"))
        .map_err(|e| repo.err(op, format!("branch name {branch}: {e}")))
}

/// Makes sure `/.worktrees/` is in `<common dir>/info/exclude`, so task worktrees never count
/// as untracked content of the main checkout. Idempotent.
pub fn exclude_worktrees_dir(name: &str, common_dir: &Path) -> Result<(), VcsError> {
    let file = common_dir.join("info").join("exclude");
    let fail = |e: std::io::Error| {
        VcsError(format!(
            "repository {name}: exclude {WORKTREES_DIR}/ in {}: {e}",
            file.display()
        ))
    };
    let current = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fail(e)),
    };
    if current.lines().any(|l| l.trim() == EXCLUDE_LINE) {
        return Ok(());
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# borg: the pipeline's task worktrees\n");
    text.push_str(EXCLUDE_LINE);
    text.push('\n');
    // Through a temporary file and a rename: a crash mid-write must not cost the user's own
    // exclude lines.
    std::fs::create_dir_all(file.parent().unwrap_or(common_dir)).map_err(fail)?;
    let temporary = file.with_extension("borg-tmp");
    std::fs::write(&temporary, text).map_err(fail)?;
    std::fs::rename(&temporary, &file).map_err(fail)
}
