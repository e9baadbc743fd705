//! The `Vcs` port on real git repositories (made with the git CLI in temporary folders): task
//! branches and worktrees made, repaired and removed; commits as borg; changed files, restore
//! and digests of a worktree; what `GitRepo::open` refuses. Needs the git CLI: without it every
//! test skips loudly (and fails when `BORG_TEST_STRICT=1`).

#[path = "support/git.rs"]
mod git_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use actors::pipeline::ports::Vcs;
use borg::git::GitRepo;
use git_support::{Fixture, git, write};

impl Fixture {
    /// A repository with `main` holding a few files and a `.gitignore` for `*.log`.
    fn new() -> Option<Fixture> {
        Fixture::with_files(&[
            ("README.md", "# project\n"),
            ("src/lib.rs", "pub fn one() -> u32 { 1 }\n"),
            ("tests/frozen.rs", "#[test] fn t() {}\n"),
            (".gitignore", "*.log\n"),
        ])
    }
}

fn branch_exists(repo: &Path, branch: &str) -> bool {
    Command::new("git")
        .current_dir(repo)
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn prepare_makes_branch_and_worktree_from_main() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(7).unwrap();
    assert_eq!(wt.branch, "borg/task-7");
    assert_eq!(wt.path, fx.repo.worktree_path(7));
    assert_eq!(wt.path, fx.repo.path().join(".worktrees/task-7"));
    assert_eq!(wt.base, fx.main_tip());
    assert_eq!(git(&fx.path, &["rev-parse", "borg/task-7"]), fx.main_tip());
    assert_eq!(
        git(&wt.path, &["symbolic-ref", "HEAD"]),
        "refs/heads/borg/task-7"
    );
    assert_eq!(
        std::fs::read_to_string(wt.path.join("src/lib.rs")).unwrap(),
        "pub fn one() -> u32 { 1 }\n"
    );
    assert_eq!(fx.repo.head(&wt.path).unwrap(), fx.main_tip());
    assert!(git(&fx.path, &["worktree", "list"]).contains(".worktrees/task-7"));
    // The worktree is not untracked content of the main checkout.
    assert_eq!(git(&fx.path, &["status", "--porcelain"]), "");
    // ... and git itself finds nothing wrong with it.
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");
}

#[test]
fn prepare_twice_is_idempotent_and_keeps_the_work() {
    let Some(fx) = Fixture::new() else { return };
    let first = fx.repo.prepare(1).unwrap();
    write(&first.path.join("src/new.rs"), "// wip\n");
    let committed = fx.repo.commit_all(&first.path, "wip").unwrap().unwrap();
    write(&first.path.join("uncommitted.txt"), "still here\n");

    let second = fx.repo.prepare(1).unwrap();
    assert_eq!(second, first, "the base stays the commit main had");
    assert_eq!(fx.repo.head(&second.path).unwrap(), committed);
    assert!(second.path.join("uncommitted.txt").exists());
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 2, "{list}");
}

#[test]
fn prepare_repairs_a_worktree_deleted_by_hand() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(3).unwrap();
    write(&wt.path.join("a.txt"), "a\n");
    let committed = fx.repo.commit_all(&wt.path, "a").unwrap().unwrap();
    std::fs::remove_dir_all(&wt.path).unwrap();

    let again = fx.repo.prepare(3).unwrap();
    assert_eq!(again.path, wt.path);
    assert_eq!(again.base, fx.main_tip());
    assert_eq!(fx.repo.head(&again.path).unwrap(), committed);
    assert_eq!(
        std::fs::read_to_string(again.path.join("a.txt")).unwrap(),
        "a\n"
    );
    // The stale record was pruned, not left beside a second one.
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 2, "{list}");
    assert!(!list.contains("prunable"), "{list}");
}

#[test]
fn prepare_clears_a_stale_index_lock_and_keeps_the_work() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(5).unwrap();
    write(&wt.path.join("c.txt"), "c\n");
    // What a git process killed in the middle of a commit leaves in the worktree's git dir.
    let record = PathBuf::from(git(&wt.path, &["rev-parse", "--absolute-git-dir"]));
    std::fs::write(record.join("index.lock"), "").unwrap();
    assert!(
        fx.repo.commit_all(&wt.path, "c").is_err(),
        "git refuses to commit past the lock"
    );

    let again = fx.repo.prepare(5).unwrap();
    assert_eq!(again, wt);
    assert!(
        !record.join("index.lock").exists(),
        "the stale lock is gone"
    );
    assert_eq!(
        std::fs::read_to_string(wt.path.join("c.txt")).unwrap(),
        "c\n",
        "uncommitted work is kept"
    );
    assert!(fx.repo.commit_all(&wt.path, "c").unwrap().is_some());
}

#[test]
fn prepare_redoes_an_add_that_crashed_halfway() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(40).unwrap();
    // What a crash in the middle of an add leaves: the record still locked as initializing,
    // the checkout incomplete.
    let record = PathBuf::from(git(&wt.path, &["rev-parse", "--absolute-git-dir"]));
    std::fs::write(record.join("locked"), "initializing\n").unwrap();
    std::fs::remove_file(wt.path.join("src/lib.rs")).unwrap();

    let again = fx.repo.prepare(40).unwrap();
    assert_eq!(again, wt);
    assert!(again.path.join("src/lib.rs").exists(), "checked out afresh");
    assert_eq!(git(&again.path, &["status", "--porcelain"]), "");
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert!(!list.contains("locked"), "{list}");
    assert_eq!(list.matches("worktree ").count(), 2, "{list}");
}

#[test]
fn prepare_gives_a_branch_without_worktree_its_worktree_back() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(4).unwrap();
    write(&wt.path.join("b.txt"), "b\n");
    let committed = fx.repo.commit_all(&wt.path, "b").unwrap().unwrap();
    fx.repo.remove(4, false).unwrap();
    assert!(!wt.path.exists());
    assert!(branch_exists(&fx.path, "borg/task-4"));

    // main moves on meanwhile: the base is still where the branch forked.
    let base = fx.main_tip();
    write(&fx.path.join("later.txt"), "later\n");
    git(&fx.path, &["add", "later.txt"]);
    git(&fx.path, &["commit", "--quiet", "-m", "later"]);

    let again = fx.repo.prepare(4).unwrap();
    assert_eq!(again.base, base);
    assert_eq!(fx.repo.head(&again.path).unwrap(), committed);
    assert!(again.path.join("b.txt").exists());
    assert!(!again.path.join("later.txt").exists());
}

#[test]
fn commit_all_commits_new_modified_and_deleted_files_as_borg() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(5).unwrap();
    assert_eq!(fx.repo.commit_all(&wt.path, "nothing").unwrap(), None);

    write(&wt.path.join("src/new.rs"), "pub fn two() {}\n");
    write(&wt.path.join("README.md"), "# changed\n");
    std::fs::remove_file(wt.path.join("tests/frozen.rs")).unwrap();
    write(&wt.path.join("debug.log"), "ignored\n");
    let message = "task 5: two\n\nA body line.\n# not a comment";
    let id = fx
        .repo
        .commit_all(&wt.path, message)
        .unwrap()
        .expect("a commit");

    assert_eq!(git(&wt.path, &["rev-parse", "HEAD"]), id);
    assert_eq!(git(&fx.path, &["rev-parse", "borg/task-5"]), id);
    assert_eq!(
        git(&fx.path, &["rev-parse", "main"]),
        wt.base,
        "main untouched"
    );
    let changes = git(&fx.path, &["diff", "--name-status", &wt.base, &id]);
    assert_eq!(
        changes.lines().collect::<Vec<_>>(),
        ["M\tREADME.md", "A\tsrc/new.rs", "D\ttests/frozen.rs"]
    );
    let who = git(
        &fx.path,
        &["log", "-1", "--format=%an <%ae>|%cn <%ce>", &id],
    );
    assert_eq!(who, "borg <borg@localhost>|borg <borg@localhost>");
    assert_eq!(git(&fx.path, &["log", "-1", "--format=%B", &id]), message);
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");
    assert_eq!(fx.repo.commit_all(&wt.path, "again").unwrap(), None);
}

#[test]
fn commit_all_runs_no_repository_hooks() {
    let Some(fx) = Fixture::new() else { return };
    // A hooks folder an agent could have written, configured the way husky does it.
    let hooks = fx.path.join(".husky");
    let marker = fx.tmp.path().join("hook-ran");
    // prepare-commit-msg and post-commit run even under --no-verify.
    for hook in [
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
    ] {
        let script = format!("#!/bin/sh\necho {hook} >> '{}'\nexit 1\n", marker.display());
        write(&hooks.join(hook), &script);
        let mut mode = std::fs::metadata(hooks.join(hook)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
        std::fs::set_permissions(hooks.join(hook), mode).unwrap();
    }
    git(
        &fx.path,
        &["config", "core.hooksPath", hooks.to_str().unwrap()],
    );
    let wt = fx.repo.prepare(6).unwrap();
    write(&wt.path.join("x.txt"), "x\n");
    assert!(fx.repo.commit_all(&wt.path, "x").unwrap().is_some());
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(ran.is_empty(), "hooks ran: {ran}");
}

#[test]
fn changed_files_counts_uncommitted_and_untracked_but_not_ignored() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(8).unwrap();
    write(&wt.path.join("committed.rs"), "c\n");
    fx.repo.commit_all(&wt.path, "c").unwrap().unwrap();
    write(&wt.path.join("README.md"), "# modified, not staged\n");
    write(&wt.path.join("staged.rs"), "s\n");
    git(&wt.path, &["add", "staged.rs"]);
    write(&wt.path.join("deep/dir/untracked.rs"), "u\n");
    std::fs::remove_file(wt.path.join("src/lib.rs")).unwrap();
    write(&wt.path.join("build.log"), "ignored\n");
    write(&wt.path.join("weird name [1]*.rs"), "w\n");

    let changed = fx.repo.changed_files(&wt.path, &wt.base).unwrap();
    assert_eq!(
        changed,
        [
            "README.md",
            "committed.rs",
            "deep/dir/untracked.rs",
            "src/lib.rs",
            "staged.rs",
            "weird name [1]*.rs",
        ]
    );
    let head = fx.repo.head(&wt.path).unwrap();
    assert!(
        !fx.repo
            .changed_files(&wt.path, &head)
            .unwrap()
            .contains(&"committed.rs".to_owned())
    );
    let err = fx.repo.changed_files(&wt.path, "no-such-rev").unwrap_err();
    assert!(err.0.contains("no-such-rev"), "{err}");
    let err = fx
        .repo
        .changed_files(&wt.path, "--output=/tmp/x")
        .unwrap_err();
    assert!(err.0.contains("project"), "{err}");
}

#[test]
fn restore_puts_back_modified_files_and_deletes_added_ones() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(9).unwrap();
    write(&wt.path.join("tests/frozen.rs"), "// tampered\n");
    write(&wt.path.join("tests/added.rs"), "// new\n");
    write(&wt.path.join("tests/staged.rs"), "// new, staged\n");
    git(&wt.path, &["add", "tests/staged.rs"]);
    std::fs::remove_file(wt.path.join("README.md")).unwrap();
    write(&wt.path.join("src/lib.rs"), "// agent's own work\n");

    let paths = [
        "tests/frozen.rs",
        "tests/added.rs",
        "tests/staged.rs",
        "README.md",
        "never/existed.rs",
    ]
    .map(String::from);
    fx.repo.restore(&wt.path, &wt.base, &paths).unwrap();

    assert_eq!(
        std::fs::read_to_string(wt.path.join("tests/frozen.rs")).unwrap(),
        "#[test] fn t() {}\n"
    );
    assert_eq!(
        std::fs::read_to_string(wt.path.join("README.md")).unwrap(),
        "# project\n"
    );
    assert!(!wt.path.join("tests/added.rs").exists());
    assert!(!wt.path.join("tests/staged.rs").exists());
    assert_eq!(
        std::fs::read_to_string(wt.path.join("src/lib.rs")).unwrap(),
        "// agent's own work\n",
        "paths not named stay as they are"
    );
    assert_eq!(
        fx.repo.changed_files(&wt.path, &wt.base).unwrap(),
        ["src/lib.rs"]
    );
    for bad in ["../outside", "/etc/passwd", ".git/config", ""] {
        let err = fx
            .repo
            .restore(&wt.path, &wt.base, &[bad.to_owned()])
            .unwrap_err();
        assert!(err.0.contains("not a relative path"), "{bad}: {err}");
    }
}

#[test]
fn hash_files_changes_when_content_changes() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(10).unwrap();
    let frozen = ["tests/frozen.rs".to_owned(), "tests/missing.rs".to_owned()];
    let before = fx.repo.hash_files(&wt.path, &frozen).unwrap();
    assert_eq!(before.len(), 40);
    assert!(before.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(fx.repo.hash_files(&wt.path, &frozen).unwrap(), before);
    let reversed = [frozen[1].clone(), frozen[0].clone()];
    assert_eq!(fx.repo.hash_files(&wt.path, &reversed).unwrap(), before);

    // The same length, one letter changed.
    write(&wt.path.join("tests/frozen.rs"), "#[test] fn u() {}\n");
    let edited = fx.repo.hash_files(&wt.path, &frozen).unwrap();
    assert_ne!(edited, before);
    write(&wt.path.join("tests/missing.rs"), "");
    let created_empty = fx.repo.hash_files(&wt.path, &frozen).unwrap();
    assert_ne!(created_empty, edited, "an empty file is not a missing one");
    std::fs::remove_file(wt.path.join("tests/missing.rs")).unwrap();
    write(&wt.path.join("tests/frozen.rs"), "#[test] fn t() {}\n");
    assert_eq!(fx.repo.hash_files(&wt.path, &frozen).unwrap(), before);

    // A folder hashes its content.
    let folder = ["tests".to_owned()];
    let dir_before = fx.repo.hash_files(&wt.path, &folder).unwrap();
    write(&wt.path.join("tests/extra.rs"), "x\n");
    assert_ne!(fx.repo.hash_files(&wt.path, &folder).unwrap(), dir_before);
}

#[test]
fn remove_deletes_worktree_and_branch_and_twice_is_fine() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(11).unwrap();
    write(
        &wt.path.join("dirty.txt"),
        "uncommitted work is discarded\n",
    );
    fx.repo.remove(11, true).unwrap();
    assert!(!wt.path.exists());
    assert!(!branch_exists(&fx.path, "borg/task-11"));
    assert!(!git(&fx.path, &["worktree", "list"]).contains("task-11"));
    fx.repo.remove(11, true).unwrap();
    // Never prepared at all.
    fx.repo.remove(12, true).unwrap();
    assert!(branch_exists(&fx.path, "main"));
}

#[test]
fn remove_cleans_up_a_worktree_deleted_by_hand() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(13).unwrap();
    std::fs::remove_dir_all(&wt.path).unwrap();
    fx.repo.remove(13, true).unwrap();
    assert!(!branch_exists(&fx.path, "borg/task-13"));
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
}

#[test]
fn open_refuses_a_folder_that_is_not_a_repository() {
    let Some(fx) = Fixture::new() else { return };
    let plain = fx.tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let err = GitRepo::open("plain", &plain).unwrap_err();
    assert!(err.0.contains("is not a git repository"), "{err}");
    assert!(err.0.contains("plain"), "{err}");
    let err = GitRepo::open("gone", fx.tmp.path().join("nowhere")).unwrap_err();
    assert!(err.0.contains("does not exist"), "{err}");
    let err = GitRepo::open("sub", fx.path.join("src")).unwrap_err();
    assert!(err.0.contains("is not a git repository"), "{err}");
}

#[test]
fn open_refuses_a_repository_without_main() {
    let Some(fx) = Fixture::new() else { return };
    let other = fx.tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    git(&other, &["init", "--quiet", "--initial-branch=trunk"]);
    write(&other.join("f"), "f\n");
    git(&other, &["add", "f"]);
    git(&other, &["commit", "--quiet", "-m", "f"]);
    let err = GitRepo::open("other", &other).unwrap_err();
    assert!(err.0.contains("has no branch main"), "{err}");
}

#[test]
fn open_refuses_bare_repositories_and_worktrees() {
    let Some(fx) = Fixture::new() else { return };
    let bare = fx.tmp.path().join("bare.git");
    git(
        fx.tmp.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            fx.path.to_str().unwrap(),
            "bare.git",
        ],
    );
    let err = GitRepo::open("bare", &bare).unwrap_err();
    assert!(err.0.contains("bare"), "{err}");
    let wt = fx.repo.prepare(14).unwrap();
    let err = GitRepo::open("wt", &wt.path).unwrap_err();
    assert!(err.0.contains("linked worktree"), "{err}");
}

#[test]
fn a_task_worktree_never_changes_the_repository_identity() {
    let Some(fx) = Fixture::new() else { return };
    let path = fx.path.canonicalize().unwrap();
    let first = fx.repo.prepare(20).unwrap();
    assert_eq!(fx.repo.name(), "project");
    assert_eq!(Vcs::name(&fx.repo), "project");
    assert_eq!(fx.repo.path(), path);
    // The next task's worktree sits in the repository, not inside the first task's worktree.
    let second = fx.repo.prepare(21).unwrap();
    assert_eq!(second.path, path.join(".worktrees/task-21"));
    assert!(!second.path.starts_with(&first.path));
    assert_eq!(GitRepo::branch_name(21), "borg/task-21");
    // Commits in a worktree land on its branch, never on main.
    write(&first.path.join("f.txt"), "f\n");
    fx.repo.commit_all(&first.path, "f").unwrap().unwrap();
    assert_eq!(fx.main_tip(), first.base);
    assert_eq!(git(&fx.path, &["symbolic-ref", "HEAD"]), "refs/heads/main");
}

#[test]
fn a_worktree_that_lost_its_git_file_never_reaches_the_main_checkout() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(22).unwrap();
    std::fs::remove_file(wt.path.join(".git")).unwrap();
    write(&wt.path.join("stray.txt"), "s\n");
    // git is told which repository it works on, so the commit lands on the task's branch and
    // main and the main checkout stay untouched.
    let id = fx.repo.commit_all(&wt.path, "stray").unwrap().unwrap();
    assert_eq!(git(&fx.path, &["rev-parse", "borg/task-22"]), id);
    assert_eq!(fx.main_tip(), wt.base);
    assert_eq!(git(&fx.path, &["status", "--porcelain"]), "");
    // A folder inside the checkout that is no worktree is refused outright.
    let err = fx.repo.head(&fx.path.join("src")).unwrap_err();
    assert!(err.0.contains("is not a worktree"), "{err}");

    // prepare gives the worktree its .git file back, so plain git works there again.
    assert_eq!(fx.repo.prepare(22).unwrap(), wt);
    assert_eq!(git(&wt.path, &["rev-parse", "HEAD"]), id);
    assert_eq!(git(&wt.path, &["status", "--porcelain"]), "");
}

#[test]
fn remove_copes_with_a_worktree_that_lost_its_git_file() {
    let Some(fx) = Fixture::new() else { return };
    let wt = fx.repo.prepare(23).unwrap();
    std::fs::remove_file(wt.path.join(".git")).unwrap();
    fx.repo.remove(23, true).unwrap();
    assert!(!wt.path.exists());
    assert!(!branch_exists(&fx.path, "borg/task-23"));
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
}

#[test]
fn tasks_prepare_concurrently() {
    let Some(fx) = Fixture::new() else { return };
    let worktrees: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (30..36)
            .map(|task| {
                let repo = &fx.repo;
                s.spawn(move || repo.prepare(task))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    for wt in &worktrees {
        assert_eq!(fx.repo.head(&wt.path).unwrap(), fx.main_tip());
    }
    let list = git(&fx.path, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 7, "{list}");
}
