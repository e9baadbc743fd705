//! The demo's sample repository: a tiny POSIX shell project whose test command, `sh test.sh`,
//! runs every `tests/*.sh` and fails if any fails. Only `sh` and coreutils are needed, because
//! the test command may run in a bare Debian container.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sample repository's test command, run from its root.
pub const SAMPLE_TEST_COMMAND: &str = "sh test.sh";
/// The sample repository's folder inside the directory given to [`create_sample_repo`].
pub const SAMPLE_REPO_DIR: &str = "greeter";

/// Author and committer of the sample's first commit, given on the command line so no global
/// git configuration is needed or read.
const DEMO_NAME: &str = "borg demo";
const DEMO_EMAIL: &str = "demo@borg.invalid";

const README: &str = "# greeter\n\n\
A tiny shell project made by `borg demo`. Run the tests with `sh test.sh`: it runs every\n\
`tests/*.sh` file and fails if any of them fails.\n";

const TEST_SH: &str = r#"#!/bin/sh
# Runs every tests/*.sh from the repository root; fails if any fails (or if there are none).
cd "$(dirname "$0")" || exit 1
count=0
failed=0
for test in tests/*.sh; do
    [ -e "$test" ] || continue
    count=$((count + 1))
    if sh "$test"; then
        echo "ok   $test"
    else
        echo "FAIL $test"
        failed=$((failed + 1))
    fi
done
echo "$count tests, $failed failed"
[ "$count" -gt 0 ] && [ "$failed" -eq 0 ]
"#;

const HELLO_SH: &str = "#!/bin/sh\n# Prints a fixed hello.\necho hello\n";

const HELLO_TEST_SH: &str = r#"#!/bin/sh
out=$(sh hello.sh) || exit 1
[ "$out" = "hello" ] || { echo "expected 'hello', got '$out'"; exit 1; }
"#;

/// The sample could not be made: which step failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRepoError {
    pub step: String,
    pub problem: String,
}

impl fmt::Display for SampleRepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot create the demo repository ({}): {}",
            self.step, self.problem
        )
    }
}

impl std::error::Error for SampleRepoError {}

fn failed(step: impl Into<String>, problem: impl ToString) -> SampleRepoError {
    SampleRepoError {
        step: step.into(),
        problem: problem.to_string(),
    }
}

/// Makes `<dir>/greeter`: a git repository on branch `main` with one commit, and returns its
/// path. Refuses a `greeter` that already exists rather than touching it. Blocking (files and
/// the git CLI): call it off the async workers.
pub fn create_sample_repo(dir: &Path) -> Result<PathBuf, SampleRepoError> {
    let repo = dir.join(SAMPLE_REPO_DIR);
    if repo.exists() {
        return Err(failed(
            format!("creating {}", repo.display()),
            "it already exists; remove it or give the demo another directory",
        ));
    }
    for (file, content) in [
        ("README.md", README),
        ("test.sh", TEST_SH),
        ("hello.sh", HELLO_SH),
        ("tests/hello_test.sh", HELLO_TEST_SH),
    ] {
        let path = repo.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failed(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| failed(format!("writing {}", path.display()), e))?;
    }
    git(&repo, &["init", "--quiet", "--initial-branch=main"])?;
    git(&repo, &["add", "--all"])?;
    git(
        &repo,
        &[
            "commit",
            "--quiet",
            "--message",
            "A tiny shell project with tests",
        ],
    )?;
    Ok(repo)
}

/// Runs `git <args>` in `repo` with the demo identity and no global or system configuration,
/// so a user's settings (signing, hooks, templates) cannot change or break the sample.
fn git(repo: &Path, args: &[&str]) -> Result<(), SampleRepoError> {
    let step = format!("git {}", args.join(" "));
    let output = Command::new("git")
        .args([
            "-c",
            &format!("user.name={DEMO_NAME}"),
            "-c",
            &format!("user.email={DEMO_EMAIL}"),
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| failed(&step, format!("cannot run git (is it installed?): {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            &step,
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ))
    }
}
