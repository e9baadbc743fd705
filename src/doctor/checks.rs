//! The local checks of `borg doctor` about the agents: the `claude` CLI and a credential it
//! gets; and [`find_program`], how the shell would find a program, shared by the others.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use crate::config::{Config, SandboxKind};

/// How long `claude --version` may take (a cold Node start on a slow disk).
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);
/// Credentials the CLI reads from its environment (what `claude::env` passes on).
const CREDENTIAL_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
];

/// `program` as the shell would find it: a path (relative ones against `base`), or a name
/// looked up in PATH. Only executable regular files count.
pub(super) fn find_program(program: &Path, base: Option<&Path>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        let path = match base {
            Some(base) if program.is_relative() => base.join(program),
            _ => program.to_owned(),
        };
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// The `claude` CLI (`CLAUDE_BIN`) and its version. Needed on this machine only when agents
/// run as processes; in containers the agent image brings its own.
pub(super) async fn claude_cli(config: &Config) -> Check {
    const NAME: &str = "claude CLI";
    let in_docker = config.agent_sandbox == SandboxKind::Docker;
    let only_warn = |detail: String, fix: String| {
        if in_docker {
            Check::warn(
                NAME,
                format!(
                    "{detail} (agents use the agent image's own CLI; this one only matters with AGENT_SANDBOX=process)"
                ),
                fix,
            )
        } else {
            Check::fail(NAME, detail, fix)
        }
    };
    let bin = &config.claude_bin;
    let Some(path) = find_program(bin, None) else {
        let mut fix = "install it (`npm install -g @anthropic-ai/claude-code`) or set CLAUDE_BIN \
                       to its path"
            .to_owned();
        let local = Path::new("node_modules/.bin/claude");
        if let Ok(local) = local.canonicalize() {
            fix.push_str(&format!("; one is at CLAUDE_BIN={}", local.display()));
        }
        return only_warn(
            format!(
                "CLAUDE_BIN={} is not an executable here or on PATH",
                bin.display()
            ),
            fix,
        );
    };
    let run = tokio::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let why = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or("(version not shown)");
            return Check::ok(NAME, format!("{} {version}", path.display()));
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            format!("{} ({tail})", out.status)
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", VERSION_TIMEOUT.as_secs()),
    };
    only_warn(
        format!("{} --version failed: {why}", path.display()),
        "reinstall it (`npm install -g @anthropic-ai/claude-code`) or point CLAUDE_BIN at a \
         working claude"
            .into(),
    )
}

/// A credential the CLI can use, from borg's own environment (agents get that, through an
/// allow-list, and a HOME of their own: neither `.env` nor `~/.claude` reaches them).
/// Never shows a secret, only where it is.
pub(super) fn credential(dir: &Path) -> Check {
    const NAME: &str = "Claude credential";
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if let Some(var) = CREDENTIAL_VARS.iter().find(|v| set(v)) {
        return Check::ok(NAME, format!("{var} is set in borg's environment"));
    }
    let in_dotenv: Vec<String> = dotenvy::from_path_iter(dir.join(".env"))
        .map(|items| {
            items
                .flatten()
                .map(|(k, _)| k)
                .filter(|k| CREDENTIAL_VARS.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(var) = in_dotenv.first() {
        return Check::fail(
            NAME,
            format!("{var} is only in .env, and borg passes agents its process environment only"),
            format!(
                "export {var} where borg runs (shell `export`, systemd `Environment=`, Compose \
                 `environment:`)"
            ),
        );
    }
    let export = "export ANTHROPIC_API_KEY (from console.anthropic.com) or \
                  CLAUDE_CODE_OAUTH_TOKEN (from `claude setup-token`) before `borg run`";
    let home_file = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".claude/.credentials.json"))
        .filter(|f| f.is_file());
    if let Some(file) = home_file {
        return Check::warn(
            NAME,
            format!(
                "only {} (a `claude login`), which agents do not read: they run with a HOME of \
                 their own",
                file.display()
            ),
            export,
        );
    }
    if set("ANTHROPIC_BASE_URL") {
        return Check::warn(
            NAME,
            "no key, but ANTHROPIC_BASE_URL is set: fine if that endpoint needs none",
            "set ANTHROPIC_API_KEY if it does",
        );
    }
    Check::fail(
        NAME,
        format!(
            "none of {} is set in borg's environment, and there is no ~/.claude/.credentials.json",
            CREDENTIAL_VARS.join(", ")
        ),
        export,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_and_relative_to_a_folder() {
        assert!(find_program(Path::new("sh"), None).is_some());
        assert!(find_program(Path::new("no-such-program-borg"), None).is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(find_program(Path::new("./x.sh"), Some(dir.path())).is_none());
    }
}
