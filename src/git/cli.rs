//! The git CLI, for what gix cannot do on an existing working tree (stage, commit, restore,
//! diff against the working tree), run under one set of rules:
//!
//! - the repository is named explicitly (`GIT_DIR`, `GIT_WORK_TREE`, taken from the main
//!   repository's own worktree records), so git never discovers a repository by walking up
//!   from a folder: a worktree that lost its `.git` file must not turn into the main checkout;
//! - `GIT_TERMINAL_PROMPT=0`: nothing ever waits for a password on a terminal nobody watches;
//! - `-c safe.directory=*`: agent containers may chown worktree files to another uid, and git
//!   would then refuse the repository as "dubious ownership";
//! - borg's identity given on every call (config and environment), never the machine's global
//!   configuration, which may have none;
//! - `core.hooksPath=/dev/null` and `commit.gpgsign=false`: hooks are code from the repository
//!   (a tracked `core.hooksPath` folder is writable by agents) that would run on the host
//!   outside the sandbox, and signing needs a key and maybe a prompt;
//! - paths from callers are literal (`GIT_LITERAL_PATHSPECS=1`), never globs or magic;
//! - stdout and stderr are captured; a failure names the repository, the operation, the git
//!   command, its exit status and git's own words.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use actors::pipeline::ports::VcsError;

/// The name and address every borg commit carries.
pub const IDENTITY_NAME: &str = "borg";
pub const IDENTITY_EMAIL: &str = "borg@localhost";

/// Variables that would point git at another repository, index, object store or namespace, or
/// change how it reads pathspecs or config: a daemon started from a git hook inherits some.
const INHERITED_GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_GLOB_PATHSPECS",
    "GIT_NOGLOB_PATHSPECS",
    "GIT_ICASE_PATHSPECS",
    "GIT_LITERAL_PATHSPECS",
];

/// Most of git's stderr a failure keeps (its end, where git says what went wrong).
const STDERR_LIMIT: usize = 4000;

/// One git command about to run on one working tree.
pub struct GitCall<'a> {
    /// For error messages: `repository <name>: <op>: ...`.
    repo_name: &'a str,
    op: &'a str,
    args: Vec<String>,
    command: Command,
    stdin: Option<Vec<u8>>,
}

/// A git command on the working tree `work_tree` whose git directory is `git_dir` (for a
/// linked worktree, its private folder under the main repository's `worktrees/`).
pub fn git<'a>(repo_name: &'a str, op: &'a str, git_dir: &Path, work_tree: &Path) -> GitCall<'a> {
    let mut command = Command::new("git");
    for var in INHERITED_GIT_VARS {
        command.env_remove(var);
    }
    command
        .current_dir(work_tree)
        .env("GIT_DIR", git_dir)
        .env("GIT_WORK_TREE", work_tree)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_LITERAL_PATHSPECS", "1")
        .env("GIT_AUTHOR_NAME", IDENTITY_NAME)
        .env("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL)
        .env("GIT_COMMITTER_NAME", IDENTITY_NAME)
        .env("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL)
        .args(["-c", "safe.directory=*"])
        .args(["-c", &format!("user.name={IDENTITY_NAME}")])
        .args(["-c", &format!("user.email={IDENTITY_EMAIL}")])
        .args(["-c", "core.hooksPath=/dev/null"])
        .args(["-c", "commit.gpgsign=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    GitCall {
        repo_name,
        op,
        args: Vec::new(),
        command,
        stdin: None,
    }
}

impl GitCall<'_> {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for arg in args {
            self.args.push(arg.as_ref().to_owned());
        }
        self
    }

    /// An environment variable for this git process only (an editor that never waits, for
    /// commands that would open one).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Bytes to feed on stdin (a commit message, a NUL-separated pathspec list).
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Runs it; any exit status but 0 is an error.
    pub fn run(self) -> Result<Output, VcsError> {
        self.run_allowing(&[0]).map(|(output, _)| output)
    }

    /// Runs it; an exit code in `ok` is a result (`git diff --quiet` answers with 0 or 1),
    /// anything else an error.
    pub fn run_allowing(mut self, ok: &[i32]) -> Result<(Output, i32), VcsError> {
        self.command.args(&self.args);
        self.command.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = self
            .command
            .spawn()
            .map_err(|e| self.fail(format!("could not start git ({e}); is git installed?")))?;
        let output = match (self.stdin.take(), child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                // Fed from a thread: git may fill its stdout pipe before it has read all of
                // stdin, and we only read stdout in wait_with_output.
                std::thread::scope(|scope| {
                    let feeder = scope.spawn(move || pipe.write_all(&bytes));
                    let output = child.wait_with_output();
                    // A write error (git exited before reading everything) shows in git's own
                    // exit status and stderr, which say more.
                    let _ = feeder.join();
                    output
                })
            }
            _ => child.wait_with_output(),
        }
        .map_err(|e| self.fail(format!("could not wait for git: {e}")))?;
        match output.status.code() {
            Some(code) if ok.contains(&code) => Ok((output, code)),
            code => {
                let status = code.map_or_else(
                    || "was killed by a signal".to_owned(),
                    |c| format!("exited with {c}"),
                );
                Err(self.fail(format!("{status}: {}", stderr_tail(&output.stderr))))
            }
        }
    }

    fn fail(&self, why: String) -> VcsError {
        VcsError(format!(
            "repository {}: {}: git {} {why}",
            self.repo_name,
            self.op,
            self.args.join(" ")
        ))
    }
}

/// git's stderr, trimmed, its last [`STDERR_LIMIT`] bytes at most (cut at a character).
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.len() <= STDERR_LIMIT {
        return if text.is_empty() {
            "(no message)".to_owned()
        } else {
            text.to_owned()
        };
    }
    let mut start = text.len() - STDERR_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// The NUL-separated path list of `git ... -z`, as strings. Paths that are not UTF-8 are
/// converted lossily: the port speaks `String`, and such names are vanishingly rare in source
/// trees.
pub fn nul_separated(stdout: &[u8]) -> impl Iterator<Item = String> + '_ {
    stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// `paths` as a NUL-separated list for `--pathspec-from-file=- --pathspec-file-nul`: no limit on
/// their number or length, unlike a command line.
pub fn nul_joined(paths: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for path in paths {
        bytes.extend_from_slice(path.as_bytes());
        bytes.push(0);
    }
    bytes
}
