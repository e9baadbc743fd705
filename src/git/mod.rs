//! Git repositories of the pipeline: the [`actors::pipeline::ports::Vcs`] port with gix where it
//! can and the git CLI where gix cannot.
//!
//! A [`GitRepo`] is one configured repository (its name and the path of its main checkout).
//! Each task works on branch `borg/task-<id>` in a linked worktree at
//! `<repo>/.worktrees/task-<id>`. gix does what it does well and in-process: opening, refs,
//! branch creation and deletion, adding and removing worktrees, reading HEADs and trees. The
//! git CLI does what gix cannot do on an existing working tree: staging and committing through
//! the index, restoring files, the diff of a working tree against a commit, merges, resets,
//! rebases, pushes and compare-and-swap moves of `main` (`cli` holds the rules every git
//! process runs under).
//!
//! Everything here blocks (file system, child processes): callers run it with
//! `spawn_blocking`, never on the async workers.
//!
//! Submodules: `worktrees` (prepare and remove), `changes` (commit, changed files, restore),
//! `digest` (hashes of frozen files and the checks on caller-given paths), `release` (what a
//! release train needs: reading main and branches, scratch worktrees, merges, advancing and
//! pushing main), `rebase` (rebase a task's branch, continue, abort), `cli`.

mod changes;
mod cli;
mod digest;
mod rebase;
mod release;
mod worktrees;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use actors::pipeline::ports::{MergeOutcome, RebaseOutcome, Vcs, VcsError, Worktree};

/// The branch every task starts from and every release lands on.
pub const MAIN_BRANCH: &str = "main";

/// The folder, inside the main checkout, that holds the tasks' worktrees.
pub const WORKTREES_DIR: &str = ".worktrees";

/// One git repository of the pipeline.
#[derive(Debug)]
pub struct GitRepo {
    /// The configured name: the repository's identity in logs, snapshots and the tree.
    name: String,
    /// The main checkout, canonical (absolute, symlinks resolved), so worktree paths built from
    /// it are absolute and compare equal to what git records.
    path: PathBuf,
    /// Serialises worktree administration (prepare, remove) in this process: two concurrent
    /// prepares of one task must not both try to register the same worktree.
    admin: Mutex<()>,
}

impl GitRepo {
    /// Opens the repository whose main checkout is `path`. Refuses a path that is not a git
    /// repository's top-level checkout (a bare repository, a linked worktree, a sub-folder)
    /// and a repository without a `main` branch. Marks `.worktrees/` as excluded in the
    /// repository's `info/exclude`, so task worktrees never show up as untracked content of
    /// the main checkout.
    pub fn open(name: impl Into<String>, path: impl AsRef<Path>) -> Result<GitRepo, VcsError> {
        let name = name.into();
        let given = path.as_ref();
        let path = given.canonicalize().map_err(|e| {
            VcsError(format!(
                "repository {name}: {} does not exist or cannot be read: {e}",
                given.display()
            ))
        })?;
        let not_a_repo = |why: String| {
            VcsError(format!(
                "repository {name}: {} is not a git repository ({why}); point the repository's \
                 path at the top folder of a git checkout",
                given.display()
            ))
        };
        let repo = gix::open(&path).map_err(|e| not_a_repo(gix_message(&e)))?;
        if repo.kind() == gix::repository::Kind::LinkedWorkTree {
            return Err(VcsError(format!(
                "repository {name}: {} is a linked worktree of {}, not a repository's main \
                 checkout",
                given.display(),
                repo.common_dir().display()
            )));
        }
        let Some(workdir) = repo.workdir() else {
            return Err(VcsError(format!(
                "repository {name}: {} is a bare repository; borg needs a checkout with a working \
                 tree",
                given.display()
            )));
        };
        if workdir.canonicalize().ok().as_deref() != Some(path.as_path()) {
            return Err(not_a_repo(format!(
                "its working tree is {}",
                workdir.display()
            )));
        }
        let main_ref = format!("refs/heads/{MAIN_BRANCH}");
        match repo.try_find_reference(main_ref.as_str()) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(VcsError(format!(
                    "repository {name}: {} has no branch {MAIN_BRANCH}; create it (git branch \
                     {MAIN_BRANCH}) or rename the default branch to {MAIN_BRANCH}",
                    given.display()
                )));
            }
            Err(e) => return Err(gix_error(&name, "read branch main", e)),
        }
        worktrees::exclude_worktrees_dir(&name, repo.common_dir())?;
        Ok(GitRepo {
            name,
            path,
            admin: Mutex::new(()),
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The main checkout (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where task `task`'s worktree lives: `<repo>/.worktrees/task-<task>`.
    pub fn worktree_path(&self, task: u64) -> PathBuf {
        self.path.join(WORKTREES_DIR).join(format!("task-{task}"))
    }

    /// Task `task`'s branch: `borg/task-<task>`.
    pub fn branch_name(task: u64) -> String {
        format!("borg/task-{task}")
    }

    /// A fresh gix handle on the main repository. Opened per operation: it costs well under a
    /// millisecond, and a long-lived handle would keep caches (config, packs) that the git CLI
    /// changes behind its back.
    fn gix(&self, op: &str) -> Result<gix::Repository, VcsError> {
        gix::open(&self.path).map_err(|e| self.gix_err(op, e))
    }

    /// An error of operation `op` on this repository, with gix's chain of causes.
    fn gix_err(&self, op: &str, e: gix::Error) -> VcsError {
        gix_error(&self.name, op, e)
    }

    /// An error of operation `op` on this repository.
    fn err(&self, op: &str, why: impl Display) -> VcsError {
        VcsError(format!("repository {}: {op}: {why}", self.name))
    }
}

impl Vcs for GitRepo {
    fn name(&self) -> &str {
        &self.name
    }

    fn prepare(&self, task: u64) -> Result<Worktree, VcsError> {
        worktrees::prepare(self, task)
    }

    fn head(&self, worktree: &Path) -> Result<String, VcsError> {
        let op = "read HEAD";
        let checkout = worktrees::checkout(self, worktree, op)?;
        Ok(checkout.head(self, op)?.to_string())
    }

    fn commit_all(&self, worktree: &Path, message: &str) -> Result<Option<String>, VcsError> {
        changes::commit_all(self, worktree, message)
    }

    fn changed_files(&self, worktree: &Path, since: &str) -> Result<Vec<String>, VcsError> {
        changes::changed_files(self, worktree, since)
    }

    fn restore(&self, worktree: &Path, commit: &str, paths: &[String]) -> Result<(), VcsError> {
        changes::restore(self, worktree, commit, paths)
    }

    fn hash_files(&self, worktree: &Path, paths: &[String]) -> Result<String, VcsError> {
        let checkout = worktrees::checkout(self, worktree, "hash files")?;
        digest::hash_files(&checkout.dir, paths).map_err(|e| self.err("hash files", e))
    }

    fn remove(&self, task: u64, delete_branch: bool) -> Result<(), VcsError> {
        worktrees::remove(self, task, delete_branch)
    }

    fn main_head(&self) -> Result<String, VcsError> {
        release::main_head(self)
    }

    fn branch_head(&self, branch: &str) -> Result<Option<String>, VcsError> {
        release::branch_head(self, branch)
    }

    fn in_main(&self, commit: &str) -> Result<bool, VcsError> {
        release::in_main(self, commit)
    }

    fn scratch(&self, name: &str, branch: Option<&str>, at: &str) -> Result<PathBuf, VcsError> {
        release::scratch(self, name, branch, at)
    }

    fn drop_scratch(&self, name: &str, branch: Option<&str>) -> Result<(), VcsError> {
        release::drop_scratch(self, name, branch)
    }

    fn merge(
        &self,
        worktree: &Path,
        branch: &str,
        message: &str,
    ) -> Result<MergeOutcome, VcsError> {
        release::merge(self, worktree, branch, message)
    }

    fn reset_hard(&self, worktree: &Path, commit: &str) -> Result<(), VcsError> {
        release::reset_hard(self, worktree, commit)
    }

    fn advance_main(&self, from: &str, to: &str) -> Result<bool, VcsError> {
        release::advance_main(self, from, to)
    }

    fn push_main(&self) -> Result<Option<String>, VcsError> {
        release::push_main(self)
    }

    fn rebase(&self, worktree: &Path, onto: &str) -> Result<RebaseOutcome, VcsError> {
        rebase::rebase(self, worktree, onto)
    }

    fn rebase_continue(&self, worktree: &Path) -> Result<RebaseOutcome, VcsError> {
        rebase::rebase_continue(self, worktree)
    }

    fn rebase_abort(&self, worktree: &Path) -> Result<(), VcsError> {
        rebase::rebase_abort(self, worktree)
    }
}

/// `repository <name>: <op>: <gix's causes>`.
fn gix_error(name: &str, op: &str, e: gix::Error) -> VcsError {
    VcsError(format!("repository {name}: {op}: {}", gix_message(&e)))
}

/// gix's error with its causes, outermost first, without repeating a cause that only echoes
/// the one before it.
fn gix_message(e: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.iter_errors() {
        let text = cause.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
