//! The ports the pipeline's actors reach the world through: [`Vcs`] (one git repository, its
//! task branches and worktrees) and [`TestRunner`] (a repository's test command, run in the
//! task's sandbox). Agents run through [`crate::agent::AgentRunner`]. The daemon provides the
//! real adapters (gix and the git CLI; Docker or a plain process).

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// A task's branch and worktree, as [`Vcs::prepare`] made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// `<repo>/.worktrees/task-<id>`.
    pub path: PathBuf,
    /// `borg/task-<id>`.
    pub branch: String,
    /// The commit of `main` the branch started from.
    pub base: String,
}

/// A git operation that failed; the message names the repository, the operation and git's
/// own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcsError(pub String);

impl fmt::Display for VcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VcsError {}

/// Git operations on one repository. Blocking: callers run them off the async workers
/// (`spawn_blocking`). Every operation is idempotent where the pipeline may repeat it after
/// a crash (`prepare`, `remove`).
pub trait Vcs: Send + Sync + 'static {
    /// The repository's name (its configured identity, not a worktree path).
    fn name(&self) -> &str;

    /// Creates branch `borg/task-<task>` from `main` and its worktree at
    /// `<repo>/.worktrees/task-<task>`. When both exist already (a restart), returns them as
    /// they are; a branch without its worktree gets the worktree back.
    fn prepare(&self, task: u64) -> Result<Worktree, VcsError>;

    /// The commit the worktree's HEAD points at (full hex id).
    fn head(&self, worktree: &Path) -> Result<String, VcsError>;

    /// Stages every change in the worktree (new, modified, deleted files; `.gitignore`d ones
    /// excepted) and commits it with `message` as borg's identity. `Ok(None)` when there was
    /// nothing to commit.
    fn commit_all(&self, worktree: &Path, message: &str) -> Result<Option<String>, VcsError>;

    /// Paths (relative to the worktree, `/`-separated, sorted) that differ between commit
    /// `since` and the working tree, counting uncommitted and untracked (not ignored) files.
    fn changed_files(&self, worktree: &Path, since: &str) -> Result<Vec<String>, VcsError>;

    /// Puts `paths` back to their content at `commit`, in the working tree; a path that did
    /// not exist at `commit` is deleted.
    fn restore(&self, worktree: &Path, commit: &str, paths: &[String]) -> Result<(), VcsError>;

    /// A hex digest over the names and contents of `paths` in the working tree (a missing
    /// file hashes as missing), to notice edits to frozen files.
    fn hash_files(&self, worktree: &Path, paths: &[String]) -> Result<String, VcsError>;

    /// Removes the task's worktree (discarding its changes) and, if `delete_branch`, its
    /// branch. Succeeds when they are already gone.
    fn remove(&self, task: u64, delete_branch: bool) -> Result<(), VcsError>;

    // --- Releases (the release train) and rebases ---

    /// The commit `main` points at (full hex id).
    fn main_head(&self) -> Result<String, VcsError>;

    /// The commit `branch` (a local branch name such as `borg/task-3`) points at; `None` when
    /// the branch does not exist.
    fn branch_head(&self, branch: &str) -> Result<Option<String>, VcsError>;

    /// Whether `commit` is `main` or one of its ancestors (already released).
    fn in_main(&self, commit: &str) -> Result<bool, VcsError>;

    /// A clean worktree at `<repo>/.worktrees/<name>` whose HEAD is `at`: on branch `branch`
    /// (created, or moved to `at`) or detached when `None`. Created when missing; otherwise any
    /// merge or rebase under way there is aborted and it is reset hard to `at` and cleaned of
    /// untracked files. Idempotent, for a train resumed after a crash. Returns its path.
    fn scratch(&self, name: &str, branch: Option<&str>, at: &str) -> Result<PathBuf, VcsError>;

    /// Removes the scratch worktree `name` and, when given, its branch. Succeeds when they are
    /// already gone.
    fn drop_scratch(&self, name: &str, branch: Option<&str>) -> Result<(), VcsError>;

    /// Merges local branch `branch` into the worktree's HEAD with a merge commit (never a
    /// fast-forward) carrying `message`. On a conflict the merge is aborted, the worktree is
    /// left as it was, and the conflicting paths are returned.
    fn merge(&self, worktree: &Path, branch: &str, message: &str)
    -> Result<MergeOutcome, VcsError>;

    /// Resets the worktree hard to `commit` and removes untracked (not ignored) files.
    fn reset_hard(&self, worktree: &Path, commit: &str) -> Result<(), VcsError>;

    /// Moves `main` from `from` to `to` as one compare-and-swap of the ref, only when `to`
    /// descends from `from`. `Ok(true)`: moved; `Ok(false)`: `main` was at `to` already (a
    /// resumed train). An error when `main` is at neither (someone else moved it) or `to` does
    /// not descend from `from`. When the main checkout has `main` checked out and is clean,
    /// its files follow the ref; otherwise only the ref moves.
    fn advance_main(&self, from: &str, to: &str) -> Result<bool, VcsError>;

    /// Pushes `main` to the repository's remote (`origin`, else its only remote), never with
    /// force. `Ok(None)` when the repository has no remote; `Ok(Some(remote))` when pushed.
    fn push_main(&self) -> Result<Option<String>, VcsError>;

    /// Rebases the worktree's branch onto commit `onto`. When a rebase is already under way
    /// there (a restart), reports where it stands instead of starting another.
    fn rebase(&self, worktree: &Path, onto: &str) -> Result<RebaseOutcome, VcsError>;

    /// Stages every change and continues the rebase under way (its conflicts resolved),
    /// keeping each commit's message.
    fn rebase_continue(&self, worktree: &Path) -> Result<RebaseOutcome, VcsError>;

    /// Aborts the rebase under way, putting the branch back as it was. Succeeds when none is.
    fn rebase_abort(&self, worktree: &Path) -> Result<(), VcsError>;
}

/// Runs a blocking git operation of `vcs` off the async workers (`spawn_blocking`).
pub async fn git<T: Send + 'static>(
    vcs: &std::sync::Arc<dyn Vcs>,
    op: impl FnOnce(&dyn Vcs) -> Result<T, VcsError> + Send + 'static,
) -> Result<T, VcsError> {
    let vcs = vcs.clone();
    tokio::task::spawn_blocking(move || op(vcs.as_ref()))
        .await
        .unwrap_or_else(|e| Err(VcsError(format!("git operation panicked: {e}"))))
}

/// How [`Vcs::merge`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The merge commit.
    Merged { commit: String },
    /// The merge was aborted; these paths conflicted.
    Conflict { files: Vec<String> },
}

/// Where a rebase stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebaseOutcome {
    /// Finished: the branch's new head.
    Done { head: String },
    /// Stopped at a commit whose changes conflict: these paths hold conflict markers, to be
    /// resolved in the working tree before [`Vcs::rebase_continue`].
    Conflict { files: Vec<String> },
}

/// One run of a repository's test command.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRequest {
    /// Who runs it, for container labels and logs ("task-12").
    pub owner: String,
    /// The worktree to test; the command runs with this as its working directory.
    pub workdir: PathBuf,
    /// Run with `sh -c`.
    pub command: String,
    pub timeout: Duration,
}

/// How a test command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub passed: bool,
    /// `None` when it was killed (timeout) or died of a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The last part of stdout and stderr interleaved, bounded (at most 16 KB).
    pub output_tail: String,
}

/// The test command could not run at all (the sandbox refused or is unreachable): not a
/// test failure, so it must not count against a task's attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunError(pub String);

impl fmt::Display for TestRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestRunError {}

/// Runs test commands. Implementations kill everything the command started when it times
/// out or when the returned future is dropped.
pub trait TestRunner: Send + Sync + 'static {
    fn run(
        &self,
        request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>>;
}

/// Where the pipeline tells people what happened: phase changes go to the admin chat and to
/// the chat a task came from. Best effort: an announcement that cannot be delivered is
/// logged, never retried at the expense of the pipeline.
pub trait Announcer: Send + Sync + 'static {
    /// Sends `text` to `chat` (a chat id such as `tg:123`), without waiting for delivery.
    fn announce(&self, chat: &str, text: String);
}
