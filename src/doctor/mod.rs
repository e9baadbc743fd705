//! `borg doctor`: checks everything a first run needs, one line per check, each failure with
//! the fix.
//!
//! Checks look rather than change (no store is created, no test is run, no message is sent;
//! the only writes are a probe file made and removed in DATA_DIR, and `.worktrees/` in a
//! repository's `.git/info/exclude`, which opening it the daemon's way adds): the configuration loads; the `claude` CLI is there and answers `--version`; a
//! credential reaches it; Docker and the agent image (only with `AGENT_SANDBOX=docker`); each
//! configured chat platform accepts its token (a harmless "who am I" call with a short
//! timeout); each repository is a git checkout with `main` and its test command can start;
//! DATA_DIR is writable with room to grow; the store (if any) is one this build opens; the web
//! port is free or held by this borg.
//!
//! A check either passes (`✓`), warns (`!`: worth knowing, not blocking), fails (`✗`: the
//! current configuration cannot work, with `→ fix:`), or is skipped (`-`: not used by this
//! configuration). The exit status is 0 exactly when nothing fails.

mod checks;
mod host;
mod remote;
mod repos;

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::config::{Config, SandboxKind};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `claude CLI`, `repository app`, …
    pub name: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail, None)
    }

    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail, None)
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Warn, detail, Some(fix.into()))
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Fail, detail, Some(fix.into()))
    }

    fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }

    /// `✓ claude CLI: /usr/bin/claude 2.1.328`, `✗ …: … → fix: …`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}: {}", self.status.symbol(), self.name, self.detail);
        if let Some(fix) = &self.fix {
            line.push_str(" → fix: ");
            line.push_str(fix);
        }
        line
    }
}

/// Runs every check for the configuration in `dir` (`.env` there, and the environment).
pub async fn run(dir: &Path) -> Vec<Check> {
    let config = match Config::load(dir) {
        Ok(config) => config,
        Err(e) => {
            return vec![Check::fail(
                "configuration",
                e.to_string(),
                format!(
                    "correct the setting in {} or in the environment (`borg config` lists them)",
                    dir.join(".env").display()
                ),
            )];
        }
    };
    let mut out = vec![Check::ok(
        "configuration",
        format!(
            "loaded (.env in {}, sandbox {})",
            dir.display(),
            config.agent_sandbox.as_str()
        ),
    )];
    let docker = config.agent_sandbox == SandboxKind::Docker;
    out.push(checks::claude_cli(&config).await);
    out.push(checks::credential(dir));
    if docker {
        out.extend(remote::docker(&config).await);
    } else {
        out.push(Check::skip(
            "Docker engine",
            "not used (AGENT_SANDBOX=process: agents run as plain processes)",
        ));
    }
    out.extend(remote::chats(&config).await);
    out.extend(repos::repositories(&config).await);
    out.push(host::data_dir(&config.data_dir));
    out.push(host::store(&config.data_dir).await);
    out.push(host::web_port(&config).await);
    out
}

/// `borg doctor [--json]`: prints the report; exit 0 only when no check failed.
pub async fn command(dir: &Path, json: bool) -> ExitCode {
    let checks = run(dir).await;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if json {
        let report = serde_json::json!({"ok": failed == 0, "checks": checks});
        println!("{report:#}");
    } else {
        for check in &checks {
            println!("{}", check.line());
        }
        let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
        match (failed, warned) {
            (0, 0) => println!("\nAll checks passed: `borg run` has what it needs."),
            (0, w) => println!("\nNothing blocks `borg run`; {w} warning(s) above."),
            (f, _) => println!("\n{f} check(s) failed: follow the `→ fix:` of each ✗ line."),
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_the_symbol_and_the_fix() {
        let ok = Check::ok("claude CLI", "/usr/bin/claude 2.1.328");
        assert_eq!(ok.line(), "✓ claude CLI: /usr/bin/claude 2.1.328");
        let bad = Check::fail("Docker engine", "cannot connect", "start dockerd");
        assert_eq!(
            bad.line(),
            "✗ Docker engine: cannot connect → fix: start dockerd"
        );
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["status"], "ok");
        assert!(json.get("fix").is_none());
    }
}
