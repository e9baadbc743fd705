//! Running the real `borg` binary from tests: [`borg`] and [`borg_inheriting_env`] build its
//! command on a test's own folder (`--dir`, run in that folder) with a dashboard port of its
//! own, [`Daemon`] kills a started daemon however the test ends, and [`free_port`] finds a
//! port nobody listens on.
//!
//! Every command gets a free `WEB_PORT`: the default (3131) would make the daemons of tests
//! running in parallel, or a developer's own borg, clash over the dashboard's port. A test
//! that needs to know the port sets `WEB_PORT` again on the command, which wins.
//!
//! `env!("CARGO_BIN_EXE_borg")` works here because this file is compiled as part of each
//! test crate that includes it.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};

/// A TCP port on 127.0.0.1 that nobody listens on now (the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `borg --dir <dir>`, run in `dir`, with the test process's environment as it is (the caller
/// removes what must not leak in) and a free `WEB_PORT`.
pub fn borg_inheriting_env(dir: &Path) -> Command {
    let mut cmd = in_dir(dir);
    cmd.env("WEB_PORT", free_port().to_string());
    cmd
}

/// `borg --dir <dir>`, run in `dir`, with nothing of the developer's environment but `PATH`,
/// and a free `WEB_PORT`.
pub fn borg(dir: &Path) -> Command {
    let mut cmd = in_dir(dir);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WEB_PORT", free_port().to_string());
    cmd
}

/// `borg --dir <dir>`, run in `dir`; the environment untouched.
fn in_dir(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_borg"));
    cmd.current_dir(dir).arg("--dir").arg(dir);
    cmd
}

/// A daemon (or any child), killed and reaped when dropped unless it has exited already: a
/// test that fails before stopping it must not leave it running, holding its ports.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What a pipeline end-to-end daemon talks to.
pub struct PipelineWorld<'a> {
    /// The fake Telegram's bot token and URL.
    pub token: &'a str,
    pub telegram_url: &'a str,
    /// The user allowed to administer, and the group that is the pipeline's admin chat.
    pub admin: i64,
    pub group: i64,
    /// The repository, with the sample's test command.
    pub repo: &'a Path,
    /// The scripted model's base URL.
    pub model_url: &'a str,
}

/// `borg run` in `dir` with a chat on the fake Telegram, one repository's pipeline and its
/// agents in Docker containers (host network: the scripted model listens on the host's
/// loopback); the caller adds what its test needs and spawns it.
pub fn containerized_pipeline(dir: &Path, world: &PipelineWorld) -> Command {
    let mut cmd = borg(dir);
    cmd.arg("run")
        .env("RUST_LOG", "info")
        .env("TELEGRAM_BOT_TOKEN", world.token)
        .env("TELEGRAM_API_URL", world.telegram_url)
        .env("BORG_ADMIN_USERS", format!("tg:{}", world.admin))
        .env("PIPELINE_ADMIN_CHAT", format!("tg:{}", world.group))
        .env("PIPELINE_REPO", world.repo)
        .env("PIPELINE_TEST_CMD", borg::demo::SAMPLE_TEST_COMMAND)
        .env("AGENT_SANDBOX", "docker")
        .env("AGENT_NETWORK", "host")
        .env("ANTHROPIC_BASE_URL", world.model_url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("COLLECTION_WINDOW_MS", "200")
        .env("COOLDOWN_MS", "200")
        .env("AGENT_IDLE_TIMEOUT_S", "60");
    cmd
}
