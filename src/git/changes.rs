//! Changes in a working tree, through the git CLI (gix has no staging of a working tree, no
//! checkout into an existing one): [`commit_all`], [`changed_files`], [`restore`].

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;

use actors::pipeline::ports::VcsError;

use super::GitRepo;
use super::cli::{self, nul_joined, nul_separated};
use super::digest::{beyond_symlink, checked_path};
use super::worktrees::{self, Checkout};

/// [`crate::git::GitRepo`]'s `Vcs::commit_all`.
pub fn commit_all(
    repo: &GitRepo,
    worktree: &Path,
    message: &str,
) -> Result<Option<String>, VcsError> {
    let op = "commit";
    let co = worktrees::checkout(repo, worktree, op)?;
    // -A: new, modified and deleted files, in the whole tree; ignored files stay out.
    git(repo, op, &co).args(["add", "--all"]).run()?;
    let (_, code) = git(repo, op, &co)
        .args(["diff", "--cached", "--quiet", "--no-ext-diff"])
        .run_allowing(&[0, 1])?;
    if code == 0 {
        return Ok(None);
    }
    // The message on stdin: no length limit, and never mistaken for an option.
    git(repo, op, &co)
        .args(["commit", "--quiet", "--no-verify", "--file=-"])
        .stdin(message.as_bytes().to_vec())
        .run()?;
    Ok(Some(co.head(repo, op)?.to_string()))
}

/// [`crate::git::GitRepo`]'s `Vcs::changed_files`.
pub fn changed_files(
    repo: &GitRepo,
    worktree: &Path,
    since: &str,
) -> Result<Vec<String>, VcsError> {
    let op = "changed files";
    let co = worktrees::checkout(repo, worktree, op)?;
    // Resolved by gix first, so git only ever sees a full commit id (never an option).
    let since = co.commit(repo, op, since)?.to_string();
    // The commit against the working tree: committed, staged and unstaged changes of tracked
    // files, deletions included. Paths come relative to the top of the working tree.
    let diff = git(repo, op, &co)
        .args([
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            since.as_str(),
            "--",
        ])
        .run()?;
    // Untracked files, each one (not their folder), .gitignore'd ones excepted.
    let untracked = git(repo, op, &co)
        .args(["ls-files", "--others", "--exclude-standard", "-z"])
        .run()?;
    let files: BTreeSet<String> = nul_separated(&diff.stdout)
        .chain(nul_separated(&untracked.stdout))
        .collect();
    Ok(files.into_iter().collect())
}

/// [`crate::git::GitRepo`]'s `Vcs::restore`. A path that is a folder at `commit` gets its
/// tracked files back; files added inside it since are left alone.
pub fn restore(
    repo: &GitRepo,
    worktree: &Path,
    commit: &str,
    paths: &[String],
) -> Result<(), VcsError> {
    let op = "restore";
    for path in paths {
        checked_path(path).map_err(|e| repo.err(op, e))?;
    }
    if paths.is_empty() {
        return Ok(());
    }
    let co = worktrees::checkout(repo, worktree, op)?;
    let commit = co.commit(repo, op, commit)?;
    let tree = co
        .repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| repo.gix_err(&format!("{op}: tree of {commit}"), e))?;
    let mut at_commit = Vec::new();
    let mut absent = Vec::new();
    for path in paths {
        let entry = tree
            .lookup_entry_by_path(path.as_str())
            .map_err(|e| repo.gix_err(&format!("{op}: look up {path} in {commit}"), e))?;
        if entry.is_some() {
            at_commit.push(path.as_str());
        } else {
            absent.push(path.as_str());
        }
    }
    let source = format!("--source={commit}");
    if !at_commit.is_empty() {
        // Index and working tree both, so the restored content is also what is staged.
        git(repo, op, &co)
            .args([
                "restore",
                source.as_str(),
                "--staged",
                "--worktree",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ])
            .stdin(nul_joined(&at_commit))
            .run()?;
    }
    if !absent.is_empty() {
        // Out of the index first (a no-op for untracked files), then off the disk.
        git(repo, op, &co)
            .args([
                "rm",
                "--cached",
                "-r",
                "--quiet",
                "--ignore-unmatch",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ])
            .stdin(nul_joined(&absent))
            .run()?;
        for path in absent {
            if beyond_symlink(&co.dir, Path::new(path)) {
                return Err(repo.err(
                    op,
                    format!(
                        "{path} lies beyond a symbolic link; not deleting outside the worktree"
                    ),
                ));
            }
            delete(&co.dir.join(path)).map_err(|e| repo.err(op, format!("delete {path}: {e}")))?;
        }
    }
    Ok(())
}

/// Deletes a file, symlink or folder; gone already is fine.
fn delete(path: &Path) -> std::io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn git<'a>(repo: &'a GitRepo, op: &'a str, co: &Checkout) -> cli::GitCall<'a> {
    cli::git(&repo.name, op, &co.git_dir, &co.dir)
}
