//! The release and rebase half of the `Vcs` port on real git repositories: scratch worktrees
//! made, repaired and reset; merge commits and merge conflicts; `main` moved forward as one
//! compare-and-swap and pushed; task branches rebased through conflicts, continued and
//! aborted. Needs the git CLI: without it every test skips loudly (and fails when
//! `BORG_TEST_STRICT=1`).

#[path = "support/git.rs"]
mod git_support;

use std::path::{Path, PathBuf};

use actors::pipeline::ports::{MergeOutcome, RebaseOutcome, Vcs};
use git_support::{Fixture, git, git_output, write};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Writes `file` in the checkout `dir` and commits everything; the new HEAD.
fn commit_file(dir: &Path, file: &str, content: &str) -> String {
    write(&dir.join(file), content);
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", file]);
    git(dir, &["rev-parse", "HEAD"])
}

impl Fixture {
    /// A repository with `main` holding a README, a source file and a `.gitignore` for `*.log`.
    fn new() -> Option<Fixture> {
        Fixture::with_files(&[
            ("README.md", "# project\n"),
            ("src/lib.rs", "pub fn one() -> u32 { 1 }\n"),
            (".gitignore", "*.log\n"),
        ])
    }

    /// Task `task`'s branch with one commit writing `file`; its worktree and that commit.
    fn task(&self, task: u64, file: &str, content: &str) -> (PathBuf, String) {
        let wt = self.repo.prepare(task).unwrap();
        write(&wt.path.join(file), content);
        let commit = self.repo.commit_all(&wt.path, file).unwrap().unwrap();
        (wt.path, commit)
    }

    /// Scratch worktree `train` at main's tip, on `branch` or detached.
    fn train(&self, branch: Option<&str>) -> PathBuf {
        self.repo
            .scratch("train", branch, &self.main_tip())
            .unwrap()
    }

    fn worktree_count(&self) -> usize {
        let list = git(&self.path, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable"), "{list}");
        list.matches("worktree ").count()
    }
}

fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> bool {
    let args = ["merge-base", "--is-ancestor", ancestor, descendant];
    git_output(dir, &args).status.success()
}

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"])
}

fn status(dir: &Path) -> String {
    git(dir, &["status", "--porcelain"])
}

fn merged(outcome: MergeOutcome) -> String {
    match outcome {
        MergeOutcome::Merged { commit } => commit,
        conflict => panic!("expected a clean merge: {conflict:?}"),
    }
}

fn done(outcome: RebaseOutcome) -> String {
    match outcome {
        RebaseOutcome::Done { head } => head,
        conflict => panic!("expected a finished rebase: {conflict:?}"),
    }
}

fn readme_conflict() -> RebaseOutcome {
    RebaseOutcome::Conflict {
        files: vec!["README.md".to_owned()],
    }
}

#[test]
fn main_head_branch_head_and_in_main_read_the_refs() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    assert_eq!(fx.repo.main_head().unwrap(), base);
    let (_, task) = fx.task(1, "a.txt", "a\n");
    assert_eq!(fx.repo.branch_head("borg/task-1").unwrap().unwrap(), task);
    assert_eq!(fx.repo.branch_head("borg/task-9").unwrap(), None);
    assert!(fx.repo.in_main(&base).unwrap());
    assert!(!fx.repo.in_main(&task).unwrap());
    let later = commit_file(&fx.path, "later.txt", "later\n");
    assert_eq!(fx.repo.main_head().unwrap(), later);
    assert!(fx.repo.in_main(&base).unwrap() && fx.repo.in_main(&later).unwrap());
    assert!(fx.repo.in_main(&"0".repeat(40)).is_err());
}

#[test]
fn scratch_creates_repairs_and_resets_its_worktree() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    let path = fx.train(None);
    assert_eq!(path, fx.path.join(".worktrees/train"));
    assert_eq!(git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]), "HEAD");
    assert_eq!(head(&path), base);

    // Dirty: modified, untracked and ignored files; only the ignored one survives.
    write(&path.join("README.md"), "changed\n");
    write(&path.join("new/file.txt"), "untracked\n");
    write(&path.join("build.log"), "ignored\n");
    assert_eq!(fx.train(None), path);
    assert_eq!(read(&path.join("README.md")), "# project\n");
    assert!(!path.join("new").exists());
    assert!(path.join("build.log").exists());

    // Deleted by hand while registered.
    std::fs::remove_dir_all(&path).unwrap();
    fx.train(None);
    assert_eq!(status(&path), "");
    assert_eq!(fx.worktree_count(), 2);

    // A folder whose record is gone.
    let record = PathBuf::from(git(&path, &["rev-parse", "--absolute-git-dir"]));
    std::fs::remove_dir_all(record).unwrap();
    fx.train(None);
    assert_eq!(head(&path), base);
    assert_eq!(fx.worktree_count(), 2);

    // On a branch: created at `at`, and moved back to `at` the next time.
    fx.train(Some("borg/release"));
    assert_eq!(
        git(&path, &["symbolic-ref", "HEAD"]),
        "refs/heads/borg/release"
    );
    let ahead = commit_file(&path, "x.txt", "x\n");
    assert_eq!(fx.repo.branch_head("borg/release").unwrap().unwrap(), ahead);
    fx.train(Some("borg/release"));
    assert_eq!(fx.repo.branch_head("borg/release").unwrap().unwrap(), base);
    assert!(!path.join("x.txt").exists());
    assert_eq!(fx.main_tip(), base);
}

#[test]
fn scratch_refuses_bad_names_and_branches_in_use() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    for name in ["", ".", "..", "a/b", "../x", "/tmp/x", ".hidden", "task-3"] {
        let err = fx.repo.scratch(name, None, &base).unwrap_err();
        assert!(err.0.contains("scratch name"), "{name:?}: {err}");
        assert!(fx.repo.drop_scratch(name, None).is_err(), "{name:?}");
    }
    let err = fx.repo.scratch("train", Some("main"), &base).unwrap_err();
    assert!(err.0.contains("cannot be a scratch"), "{err}");
    // A task's branch is checked out in the task's worktree: git refuses to take it.
    fx.repo.prepare(2).unwrap();
    assert!(
        fx.repo
            .scratch("train", Some("borg/task-2"), &base)
            .is_err()
    );
    assert_eq!(fx.repo.branch_head("borg/task-2").unwrap().unwrap(), base);
}

#[test]
fn scratch_aborts_a_half_done_merge_or_rebase_and_drop_removes_it() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    fx.task(1, "README.md", "one\n");
    fx.task(2, "README.md", "two\n");
    let path = fx.train(Some("borg/release"));
    git(&path, &["merge", "--quiet", "borg/task-1"]);
    assert!(
        !git_output(&path, &["merge", "borg/task-2"])
            .status
            .success()
    );
    assert!(read(&path.join("README.md")).contains("<<<<<<<"));
    fx.train(Some("borg/release"));
    let merge_head = git_output(&path, &["rev-parse", "-q", "--verify", "MERGE_HEAD"]);
    assert!(merge_head.stdout.is_empty());
    assert_eq!((head(&path), status(&path)), (base.clone(), String::new()));

    commit_file(&path, "README.md", "release\n");
    assert!(
        !git_output(&path, &["rebase", "borg/task-2"])
            .status
            .success()
    );
    let state = PathBuf::from(git(&path, &["rev-parse", "--git-path", "rebase-merge"]));
    assert!(path.join(&state).is_dir());
    fx.train(Some("borg/release"));
    assert!(!path.join(&state).exists());
    assert_eq!(
        git(&path, &["symbolic-ref", "HEAD"]),
        "refs/heads/borg/release"
    );
    assert_eq!((head(&path), status(&path)), (base, String::new()));

    fx.repo.drop_scratch("train", Some("borg/release")).unwrap();
    assert!(!path.exists());
    assert_eq!(fx.repo.branch_head("borg/release").unwrap(), None);
    assert_eq!(fx.worktree_count(), 3);
    fx.repo.drop_scratch("train", Some("borg/release")).unwrap();
    fx.repo.drop_scratch("never", None).unwrap();
}

#[test]
fn merge_makes_a_merge_commit_and_aborts_on_conflict() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    let (_, one) = fx.task(1, "README.md", "one\n");
    let (_, two) = fx.task(2, "b.txt", "b\n");
    fx.task(3, "README.md", "three\n");
    let path = fx.train(Some("borg/release"));

    let first = merged(fx.repo.merge(&path, "borg/task-1", "Merge 1").unwrap());
    // Never a fast-forward: a merge commit with both parents, and the given message.
    let parents = git(&path, &["rev-list", "--parents", "-n1", &first]);
    assert_eq!(parents, format!("{first} {base} {one}"));
    assert_eq!(git(&path, &["log", "-1", "--format=%s", &first]), "Merge 1");
    let second = merged(fx.repo.merge(&path, "borg/task-2", "Merge 2").unwrap());
    assert!(is_ancestor(&path, &two, &second));

    let outcome = fx.repo.merge(&path, "borg/task-3", "Merge 3").unwrap();
    let files = vec!["README.md".to_owned()];
    assert_eq!(outcome, MergeOutcome::Conflict { files });
    assert_eq!((head(&path), status(&path)), (second, String::new()));
    assert_eq!(read(&path.join("README.md")), "one\n");

    assert!(fx.repo.merge(&path, "borg/task-9", "Merge 9").is_err());
    fx.repo.reset_hard(&path, &base).unwrap();
    assert_eq!(head(&path), base);
}

#[test]
fn advance_main_moves_ref_and_clean_checkout_once() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    fx.task(1, "a.txt", "a\n");
    let path = fx.train(None);
    let release = merged(fx.repo.merge(&path, "borg/task-1", "m").unwrap());
    let err = fx.repo.advance_main(&release, &base).unwrap_err();
    assert!(err.0.contains("does not descend"), "{err}");
    assert_eq!(fx.main_tip(), base);

    assert!(fx.repo.advance_main(&base, &release).unwrap());
    assert_eq!(fx.main_tip(), release);
    assert_eq!(read(&fx.path.join("a.txt")), "a\n");
    assert_eq!(status(&fx.path), "");
    // A resumed train: already there.
    assert!(!fx.repo.advance_main(&base, &release).unwrap());

    // main is at neither `from` nor `to`: someone else moved it.
    let other = commit_file(&path, "c.txt", "c\n");
    let err = fx.repo.advance_main(&base, &other).unwrap_err();
    assert!(err.0.contains("main moved"), "{err}");
    assert_eq!(fx.main_tip(), release);
}

#[test]
fn advance_main_with_a_dirty_checkout_moves_only_the_ref() {
    let Some(fx) = Fixture::new() else { return };
    let base = fx.main_tip();
    fx.task(1, "a.txt", "a\n");
    let path = fx.train(None);
    let release = merged(fx.repo.merge(&path, "borg/task-1", "m").unwrap());
    write(&fx.path.join("README.md"), "local edit\n");
    assert!(fx.repo.advance_main(&base, &release).unwrap());
    assert_eq!(fx.main_tip(), release);
    assert_eq!(read(&fx.path.join("README.md")), "local edit\n");
    assert!(!fx.path.join("a.txt").exists());
}

#[test]
fn push_main_pushes_to_origin_or_the_only_remote() {
    let Some(fx) = Fixture::new() else { return };
    assert_eq!(fx.repo.push_main().unwrap(), None);
    let bare = |name: &str| {
        git(
            fx.tmp.path(),
            &["init", "--quiet", "--bare", "--initial-branch=main", name],
        );
        let path = fx.tmp.path().join(name);
        git(&fx.path, &["remote", "add", name, path.to_str().unwrap()]);
        path
    };
    let upstream = bare("upstream");
    assert_eq!(fx.repo.push_main().unwrap().as_deref(), Some("upstream"));
    assert_eq!(git(&upstream, &["rev-parse", "main"]), fx.main_tip());

    let origin = bare("origin");
    commit_file(&fx.path, "later.txt", "later\n");
    assert_eq!(fx.repo.push_main().unwrap().as_deref(), Some("origin"));
    assert_eq!(git(&origin, &["rev-parse", "main"]), fx.main_tip());
}

#[test]
fn rebase_replays_a_branch_onto_main() {
    let Some(fx) = Fixture::new() else { return };
    let (wt, old) = fx.task(1, "a.txt", "a\n");
    let main = commit_file(&fx.path, "b.txt", "b\n");
    let new = done(fx.repo.rebase(&wt, &main).unwrap());
    assert_ne!(new, old);
    assert!(is_ancestor(&fx.path, &main, &new));
    assert_eq!(fx.repo.branch_head("borg/task-1").unwrap().unwrap(), new);
    assert!(wt.join("b.txt").exists() && wt.join("a.txt").exists());
}

#[test]
fn rebase_stops_on_each_conflict_and_continues_after_resolution() {
    let Some(fx) = Fixture::new() else { return };
    let (wt, _) = fx.task(1, "README.md", "task one\n");
    write(&wt.join("README.md"), "task two\n");
    fx.repo.commit_all(&wt, "two").unwrap().unwrap();
    let main = commit_file(&fx.path, "README.md", "main\n");

    assert_eq!(fx.repo.rebase(&wt, &main).unwrap(), readme_conflict());
    assert!(read(&wt.join("README.md")).contains("<<<<<<< "));
    // Asked again (a restart): where it stands, not a second rebase.
    assert_eq!(fx.repo.rebase(&wt, &main).unwrap(), readme_conflict());

    write(&wt.join("README.md"), "main and one\n");
    let second = fx.repo.rebase_continue(&wt).unwrap();
    assert_eq!(second, readme_conflict(), "stops at the second commit");
    write(&wt.join("README.md"), "main and two\n");
    let new = done(fx.repo.rebase_continue(&wt).unwrap());
    assert!(is_ancestor(&fx.path, &main, &new));
    let count = git(
        &fx.path,
        &["rev-list", "--count", &format!("{main}..{new}")],
    );
    assert_eq!(count, "2");
    assert_eq!(read(&wt.join("README.md")), "main and two\n");
    assert_eq!(status(&wt), "");
    assert_eq!(done(fx.repo.rebase_continue(&wt).unwrap()), new);
}

#[test]
fn rebase_skips_a_commit_its_resolution_empties() {
    let Some(fx) = Fixture::new() else { return };
    let (wt, _) = fx.task(1, "README.md", "task\n");
    let main = commit_file(&fx.path, "README.md", "main\n");
    assert_eq!(fx.repo.rebase(&wt, &main).unwrap(), readme_conflict());
    write(&wt.join("README.md"), "main\n");
    assert_eq!(done(fx.repo.rebase_continue(&wt).unwrap()), main);
}

#[test]
fn rebase_abort_puts_the_branch_back() {
    let Some(fx) = Fixture::new() else { return };
    let (wt, old) = fx.task(1, "README.md", "task\n");
    let main = commit_file(&fx.path, "README.md", "main\n");
    assert_eq!(fx.repo.rebase(&wt, &main).unwrap(), readme_conflict());
    fx.repo.rebase_abort(&wt).unwrap();
    assert_eq!((head(&wt), status(&wt)), (old, String::new()));
    assert_eq!(
        git(&wt, &["symbolic-ref", "HEAD"]),
        "refs/heads/borg/task-1"
    );
    assert_eq!(read(&wt.join("README.md")), "task\n");
    fx.repo.rebase_abort(&wt).unwrap();
}

#[test]
fn a_rebase_stopped_without_conflict_is_aborted_and_reported() {
    let Some(fx) = Fixture::new() else { return };
    let (wt, _) = fx.task(1, "c.txt", "tracked for a while\n");
    std::fs::remove_file(wt.join("c.txt")).unwrap();
    let old = fx.repo.commit_all(&wt, "drop c").unwrap().unwrap();
    let main = commit_file(&fx.path, "b.txt", "b\n");
    // Replaying the first commit would overwrite this untracked file: git stops there,
    // without a conflict.
    write(&wt.join("c.txt"), "untracked\n");
    let err = fx.repo.rebase(&wt, &main).unwrap_err();
    assert!(
        err.0.contains("c.txt") && err.0.contains("aborted"),
        "{err}"
    );
    assert_eq!(head(&wt), old);
    assert_eq!(
        git(&wt, &["symbolic-ref", "HEAD"]),
        "refs/heads/borg/task-1"
    );
    assert_eq!(read(&wt.join("c.txt")), "untracked\n");
    let state = PathBuf::from(git(&wt, &["rev-parse", "--git-path", "rebase-merge"]));
    assert!(!wt.join(state).exists());
}
