//! The repository checks of `borg doctor`: each repository is a git checkout with `main`, as
//! the pipeline opens it (which, as at the daemon's start, adds `.worktrees/` to its
//! `.git/info/exclude`), and its test command's program exists (the tests are not run).

use std::path::Path;

use super::Check;
use super::checks::find_program;
use crate::config::{Config, SandboxKind};
use crate::pipeline::RepoConfig;

/// Shell builtins a test command may start with; `sh -c` runs them without a program.
const SHELL_BUILTINS: &[&str] = &[
    "cd", "exec", "export", "set", "true", "false", ":", ".", "test", "[", "command",
];

/// Each repository: a git checkout with `main` (as the pipeline opens it), and a test command
/// whose program exists.
pub(super) async fn repositories(config: &Config) -> Vec<Check> {
    let repos = match crate::pipeline::repos(config) {
        Ok(repos) => repos,
        Err(why) => {
            return vec![Check::fail(
                "repositories",
                why,
                "give each WATCHED_REPOS entry a distinct slug",
            )];
        }
    };
    if repos.is_empty() {
        return vec![Check::skip(
            "repositories",
            "none configured (PIPELINE_REPO, WATCHED_REPOS): the pipeline stays off",
        )];
    }
    let in_docker = config.agent_sandbox == SandboxKind::Docker;
    let mut out = Vec::new();
    for repo in repos {
        out.push(repository(&repo).await);
        out.push(test_command(&repo, in_docker));
    }
    out
}

async fn repository(repo: &RepoConfig) -> Check {
    let name = format!("repository {}", repo.name);
    let var = if repo.primary {
        "PIPELINE_REPO"
    } else {
        "WATCHED_REPOS"
    };
    let path = repo.path.clone();
    if !path.exists() {
        return Check::fail(
            name,
            format!("{} does not exist", path.display()),
            format!("clone the repository there, or correct {var}"),
        );
    }
    let (repo_name, at) = (repo.name.clone(), path.clone());
    let opened =
        tokio::task::spawn_blocking(move || crate::git::GitRepo::open(repo_name, &at)).await;
    match opened {
        Ok(Ok(_)) => Check::ok(
            name,
            format!("{} (git checkout with branch main)", path.display()),
        ),
        Ok(Err(e)) => {
            let prefix = format!("repository {}: ", repo.name);
            let why = e.0.strip_prefix(&prefix).unwrap_or(&e.0).to_owned();
            Check::fail(
                name,
                why,
                format!(
                    "{var} must name the top folder of a git checkout with a `main` branch \
                     (`git -C {} branch main` makes one at the current commit)",
                    path.display()
                ),
            )
        }
        Err(e) => Check::fail(name, format!("the check stopped: {e}"), "run it again"),
    }
}

/// The program a shell command starts: its first word after any `NAME=value` assignments.
fn first_program(command: &str) -> Option<&str> {
    command
        .split_whitespace()
        .find(|word| {
            !word.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(|word| word.trim_matches(|c| c == '"' || c == '\''))
}

fn test_command(repo: &RepoConfig, in_docker: bool) -> Check {
    let name = format!("test command {}", repo.name);
    let cmd = &repo.test_cmd;
    let Some(program) = first_program(cmd) else {
        return Check::fail(
            name,
            "empty",
            "set PIPELINE_TEST_CMD (or the WATCHED_REPOS entry's)",
        );
    };
    if SHELL_BUILTINS.contains(&program) {
        return Check::ok(name, format!("`{cmd}` (starts with a shell builtin)"));
    }
    if let Some(found) = find_program(Path::new(program), Some(&repo.path)) {
        return Check::ok(name, format!("`{cmd}` ({program}: {})", found.display()));
    }
    let detail = format!(
        "`{cmd}`: {program} is neither on PATH nor a file in {}",
        repo.path.display()
    );
    if in_docker {
        Check::warn(
            name,
            format!("{detail} of this machine"),
            "fine if the agent image has it (tests run in containers); else add it to \
             container/Dockerfile and run `borg image build`",
        )
    } else {
        Check::fail(
            name,
            detail,
            format!("install {program}, or change PIPELINE_TEST_CMD (or the WATCHED_REPOS entry)"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_of_a_command_skips_assignments_and_quotes() {
        assert_eq!(first_program("cargo test --locked"), Some("cargo"));
        assert_eq!(
            first_program("RUST_LOG=debug FOO= make check"),
            Some("make")
        );
        assert_eq!(first_program("'./run tests.sh'"), Some("./run"));
        assert_eq!(first_program("  "), None);
    }
}
