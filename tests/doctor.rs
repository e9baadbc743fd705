//! `borg doctor` as a user runs it: a healthy first-run setup passes with exit 0, and each
//! broken piece in turn fails the right line, with the right advice, and a non-zero exit.

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/fake_discord.rs"]
mod fake_discord;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/git.rs"]
mod git_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use daemon_support::free_port;
use git_support::git;
use serde_json::Value;

/// A healthy setup: a git repository with `main` and `sh test.sh`, a claude CLI, a credential,
/// a free port, processes as the sandbox. Each test breaks one thing.
struct Rig {
    dir: tempfile::TempDir,
    repo: PathBuf,
    claude: PathBuf,
    port: u16,
}

/// A repository whose only branch is `branch`, holding a passing `test.sh`.
fn make_repo(path: &Path, branch: &str) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", branch]);
    std::fs::write(path.join("test.sh"), "exit 0\n").unwrap();
    git(path, &["add", "."]);
    git(path, &["commit", "-q", "-m", "first"]);
}

/// The real claude CLI when there is one (CLAUDE_BIN, this repository's node_modules), else a
/// script that prints a version.
fn claude(dir: &Path) -> PathBuf {
    let candidates = std::env::var_os("CLAUDE_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/claude")]);
    for bin in candidates {
        if bin.is_file() {
            return bin;
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let fake = dir.join("claude");
    std::fs::write(&fake, "#!/bin/sh\necho '2.1.328 (Claude Code)'\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        make_repo(&repo, "main");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let claude = claude(dir.path());
        Rig {
            repo,
            claude,
            port: free_port(),
            dir,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `borg doctor` with the healthy settings; `tweak` breaks something.
    fn command(&self) -> Command {
        let mut cmd = self.borg();
        cmd.arg("doctor");
        cmd
    }

    /// `borg` with the healthy settings and no subcommand yet.
    fn borg(&self) -> Command {
        // A developer's own settings must not leak into the test.
        let mut cmd = daemon_support::borg(self.path());
        cmd.env("HOME", self.path().join("home"))
            .env("AGENT_SANDBOX", "process")
            .env("CLAUDE_BIN", &self.claude)
            .env("ANTHROPIC_API_KEY", "dummy")
            .env("PIPELINE_REPO", &self.repo)
            .env("PIPELINE_TEST_CMD", "sh test.sh")
            .env("DATA_DIR", self.path().join("data"))
            .env("WEB_BIND", "127.0.0.1")
            .env("WEB_PORT", self.port.to_string());
        cmd
    }

    /// Runs the doctor twice (text and JSON): (exit code, text output, the JSON report).
    fn run(&self, tweak: impl Fn(&mut Command)) -> (i32, String, Value) {
        let mut text = self.command();
        tweak(&mut text);
        let text = text.output().unwrap();
        let mut json = self.command();
        tweak(&mut json);
        let json = json.arg("--json").output().unwrap();
        assert_eq!(
            text.status.code(),
            json.status.code(),
            "text and --json agree"
        );
        let report: Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("--json is not JSON ({e}): {json:?}"));
        let out = String::from_utf8(text.stdout).unwrap();
        (text.status.code().unwrap_or(-1), out, report)
    }
}

/// The check whose name starts with `name`.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// Asserts that exactly the check `name` failed, its detail says `detail` and its fix says
/// `fix`, the text shows it as a ✗ line with the fix, and the exit is non-zero.
fn assert_fails(result: &(i32, String, Value), name: &str, detail: &str, fix: &str) {
    let (code, text, report) = result;
    assert_ne!(*code, 0, "{text}");
    assert_eq!(report["ok"], false);
    let c = check(report, name);
    assert_eq!(c["status"], "fail", "{c:#}\n{text}");
    let (d, f) = (c["detail"].as_str().unwrap(), c["fix"].as_str().unwrap());
    assert!(d.contains(detail), "detail {d:?} lacks {detail:?}");
    assert!(f.contains(fix), "fix {f:?} lacks {fix:?}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("✗ {name}")))
        .unwrap_or_else(|| panic!("no ✗ {name} line in\n{text}"));
    assert!(line.contains(" → fix: "), "{line}");
    let others: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .filter(|n| !n.starts_with(name))
        .collect();
    assert!(
        others.is_empty(),
        "only {name} should fail, also: {others:?}\n{text}"
    );
}

#[test]
fn a_healthy_setup_passes_every_check_with_exit_0() {
    let rig = Rig::new();
    let (code, text, report) = rig.run(|_| {});
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["ok"], true);
    for c in report["checks"].as_array().unwrap() {
        assert!(c["status"] == "ok" || c["status"] == "skip", "{c:#}");
    }
    let claude = check(&report, "claude CLI")["detail"].as_str().unwrap();
    assert!(
        claude.starts_with(&rig.claude.display().to_string()),
        "{claude}"
    );
    assert!(claude.contains("2."), "a version: {claude}");
    assert!(text.contains("✓ repository app:"), "{text}");
    assert!(text.contains("✓ test command app: `sh test.sh`"), "{text}");
    assert!(text.contains("MB free"), "{text}");
    assert!(text.contains("- Docker engine: not used"), "{text}");
    assert!(
        !text.contains("dummy"),
        "a secret is never printed:\n{text}"
    );
}

#[test]
fn a_missing_claude_cli_fails_with_how_to_install_it() {
    let rig = Rig::new();
    let result = rig.run(|c| {
        c.env("CLAUDE_BIN", "/nonexistent/claude");
    });
    assert_fails(&result, "claude CLI", "/nonexistent/claude", "CLAUDE_BIN");
    assert_fails(
        &result,
        "claude CLI",
        "",
        "npm install -g @anthropic-ai/claude-code",
    );
}

#[test]
fn no_credential_fails_naming_the_variables() {
    let rig = Rig::new();
    let result = rig.run(|c| {
        c.env_remove("ANTHROPIC_API_KEY");
    });
    assert_fails(
        &result,
        "Claude credential",
        "ANTHROPIC_API_KEY",
        "export ANTHROPIC_API_KEY",
    );
    // In .env only: borg does not pass .env to agents, and says so.
    std::fs::write(rig.path().join(".env"), "ANTHROPIC_API_KEY=in-the-file\n").unwrap();
    let result = rig.run(|c| {
        c.env_remove("ANTHROPIC_API_KEY");
    });
    assert_fails(
        &result,
        "Claude credential",
        "only in .env",
        "export ANTHROPIC_API_KEY",
    );
    assert!(!result.1.contains("in-the-file"), "{}", result.1);
}

#[test]
fn a_repository_without_main_fails_with_how_to_make_it() {
    let rig = Rig::new();
    let trunk = rig.path().join("trunk");
    make_repo(&trunk, "trunk");
    let result = rig.run(|c| {
        c.env("PIPELINE_REPO", &trunk);
    });
    assert_fails(&result, "repository trunk", "no branch main", "branch main");
}

#[test]
fn a_folder_that_is_not_a_git_repository_fails() {
    let rig = Rig::new();
    let plain = rig.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("test.sh"), "exit 0\n").unwrap();
    let result = rig.run(|c| {
        c.env("PIPELINE_REPO", &plain);
    });
    assert_fails(
        &result,
        "repository plain",
        "not a git repository",
        "PIPELINE_REPO",
    );
}

#[test]
fn a_test_command_that_cannot_start_fails() {
    let rig = Rig::new();
    let result = rig.run(|c| {
        c.env("PIPELINE_TEST_CMD", "no-such-tool-borg --all");
    });
    assert_fails(
        &result,
        "test command app",
        "no-such-tool-borg",
        "PIPELINE_TEST_CMD",
    );
    // A script in the repository counts, by its relative path.
    let (code, text, _) = rig.run(|c| {
        c.env("PIPELINE_TEST_CMD", "CI=1 ./missing.sh");
    });
    assert_ne!(code, 0, "{text}");
    use std::os::unix::fs::PermissionsExt;
    let script = rig.repo.join("run-tests");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text, _) = rig.run(|c| {
        c.env("PIPELINE_TEST_CMD", "CI=1 ./run-tests");
    });
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_data_folder_that_cannot_be_written_fails() {
    let rig = Rig::new();
    // A file where the folder should be: refused for everyone, root included.
    let file = rig.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let result = rig.run(|c| {
        c.env("DATA_DIR", &file);
    });
    assert_fails(&result, "data folder", "is a file", "DATA_DIR");

    use std::os::unix::fs::PermissionsExt;
    let locked = rig.path().join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let read_only = if std::fs::write(locked.join("probe"), "x").is_ok() {
        // root ignores the mode bits; /proc refuses new files even to root.
        eprintln!(
            "\n!!!!!!!! SKIPPED the chmod 555 case: running as root, the mode bits do not \
             stop writes; testing a folder under /proc instead !!!!!!!!\n"
        );
        PathBuf::from("/proc/borg-doctor-test/data")
    } else {
        locked
    };
    let result = rig.run(|c| {
        c.env("DATA_DIR", &read_only);
    });
    assert_fails(&result, "data folder", "not writable", "DATA_DIR");
}

#[test]
fn a_taken_web_port_fails_unless_borg_holds_it() {
    let rig = Rig::new();
    let taken = std::net::TcpListener::bind(("127.0.0.1", rig.port)).unwrap();
    let result = rig.run(|_| {});
    assert_fails(&result, "web port", "cannot listen", "WEB_PORT");
    drop(taken);

    // The borg daemon of this DATA_DIR on the port is how it should be.
    let mut daemon = rig
        .borg()
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = rig.path().join("data/borg.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Whether or not this build's daemon serves the dashboard yet, the port is taken.
    let held = std::net::TcpListener::bind(("127.0.0.1", rig.port));
    let (code, text, report) = rig.run(|_| {});
    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(daemon.wait().unwrap().success());
    drop(held);
    assert_eq!(code, 0, "{text}");
    let port = check(&report, "web port")["detail"].as_str().unwrap();
    assert!(port.contains("held by the running borg"), "{port}");
    let store = check(&report, "store")["detail"].as_str().unwrap();
    assert!(store.contains("open in a running borg"), "{store}");
}

#[test]
fn a_telegram_token_the_bot_api_refuses_fails_without_showing_it() {
    let rig = Rig::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_telegram::FakeTelegram::start("good:token"));
    let good = rig.run(|c| {
        c.env("TELEGRAM_BOT_TOKEN", "good:token")
            .env("TELEGRAM_API_URL", &fake.url);
    });
    assert_eq!(good.0, 0, "{}", good.1);
    assert!(
        good.1.contains("✓ Telegram: token accepted") && good.1.contains("@borg_test_bot"),
        "{}",
        good.1
    );

    let refused = rig.run(|c| {
        c.env("TELEGRAM_BOT_TOKEN", "123:SECRET-VALUE")
            .env("TELEGRAM_API_URL", &fake.url);
    });
    assert_fails(
        &refused,
        "Telegram",
        "refused the bot token",
        "TELEGRAM_BOT_TOKEN",
    );
    assert!(!refused.1.contains("SECRET-VALUE"), "{}", refused.1);
    assert!(!refused.2.to_string().contains("SECRET-VALUE"));

    // Nobody listening: unreachable, quickly, with the same care for the token.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let unreachable = rig.run(|c| {
        c.env("TELEGRAM_BOT_TOKEN", "123:SECRET-VALUE")
            .env("TELEGRAM_API_URL", &dead);
    });
    assert_fails(&unreachable, "Telegram", "getMe", "TELEGRAM_API_URL");
    assert!(!unreachable.1.contains("SECRET-VALUE"), "{}", unreachable.1);
}

#[test]
fn a_discord_token_the_api_refuses_fails_without_showing_it() {
    let rig = Rig::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_discord::FakeDiscord::start("good.token"));
    let good = rig.run(|c| {
        c.env("DISCORD_ENABLED", "true")
            .env("DISCORD_TOKEN", "good.token")
            .env("DISCORD_API_URL", &fake.api_url);
    });
    assert_eq!(good.0, 0, "{}", good.1);
    assert!(good.1.contains("✓ Discord: token accepted"), "{}", good.1);

    let refused = rig.run(|c| {
        c.env("DISCORD_ENABLED", "true")
            .env("DISCORD_TOKEN", "SECRET.VALUE")
            .env("DISCORD_API_URL", &fake.api_url);
    });
    assert_fails(
        &refused,
        "Discord",
        "refused the bot token",
        "DISCORD_TOKEN",
    );
    assert!(!refused.1.contains("SECRET.VALUE"), "{}", refused.1);
}

#[test]
fn docker_sandbox_with_a_dead_engine_fails_with_the_alternatives() {
    let rig = Rig::new();
    let socket = rig.path().join("dead.sock");
    let result = rig.run(|c| {
        c.env("AGENT_SANDBOX", "docker")
            .env("DOCKER_HOST", format!("unix://{}", socket.display()));
    });
    assert_fails(
        &result,
        "Docker engine",
        "cannot connect to unix://",
        "AGENT_SANDBOX=process",
    );
    assert_fails(&result, "Docker engine", "", "start dockerd");
    let image = check(&result.2, "agent image");
    assert_eq!(image["status"], "skip", "{image:#}");
}
