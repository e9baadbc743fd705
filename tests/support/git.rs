//! The git CLI in tests: [`git`] runs it on a repository a test made and returns its output
//! (or panics with git's stderr), [`git_succeeds`] only says whether it worked (false also
//! when git is not installed), and [`Fixture`] is the repository the `Vcs` tests
//! (`tests/git.rs`, `tests/git_release.rs`) work on, skipping loudly without git.
//!
//! git always runs with a test identity (the machine may have no global config), without
//! commit signing or prompts, and accepting repositories of any owner.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use borg::git::GitRepo;

/// A missing component: say so loudly, and fail instead when `BORG_TEST_STRICT=1` (CI).
pub fn skip(why: &str) {
    if std::env::var("BORG_TEST_STRICT").as_deref() == Ok("1") {
        panic!("BORG_TEST_STRICT=1 and {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// `git` in `dir` with the test settings, no arguments yet.
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .args([
            "-c",
            "user.name=tester",
            "-c",
            "user.email=tester@localhost",
        ])
        .args(["-c", "commit.gpgsign=false", "-c", "safe.directory=*"]);
    cmd
}

/// Runs git in `dir`, whatever its outcome; panics only if git cannot be run.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    git_command(dir).args(args).output().expect("run git")
}

/// Runs git in `dir`: its standard output, trimmed; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether git ran in `dir` and succeeded: false also when git is not installed.
pub fn git_succeeds(dir: &Path, args: &[&str]) -> bool {
    git_command(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes `content` to `path`, making its folders.
pub fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// A repository `project` in a temporary folder, its `main` holding one commit.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    /// The repository's folder, canonical (as [`GitRepo::path`] has it).
    pub path: PathBuf,
    pub repo: GitRepo,
}

impl Fixture {
    /// The repository with `files` (path, content; written in this order) committed on
    /// `main`, or `None` after skipping loudly when the git CLI is not installed.
    pub fn with_files(files: &[(&str, &str)]) -> Option<Fixture> {
        if Command::new("git").arg("--version").output().is_err() {
            skip("the git CLI is not installed");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("project");
        std::fs::create_dir(&path).unwrap();
        git(&path, &["init", "--quiet", "--initial-branch=main"]);
        for (file, content) in files {
            write(&path.join(file), content);
        }
        git(&path, &["add", "--all"]);
        git(&path, &["commit", "--quiet", "-m", "initial"]);
        let repo = GitRepo::open("project", &path).expect("open the fixture repository");
        let path = repo.path().to_owned();
        Some(Fixture { tmp, path, repo })
    }

    pub fn main_tip(&self) -> String {
        git(&self.path, &["rev-parse", "refs/heads/main"])
    }
}
