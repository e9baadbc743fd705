//! The daemon's configuration: what [`Config::load`] reads, from where, and what wins.
//!
//! # Where values come from
//!
//! Every setting is a variable named in [`VARIABLES`]. [`Config::load`]`(dir)` looks each
//! one up in two places, first match wins:
//!
//! 1. the process environment (so `COOLDOWN_MS=0 borg run` overrides the file for one run);
//! 2. the file `dir/.env`, if it exists, in dotenv syntax (`NAME=value`, `#` comments,
//!    quotes, `export` prefixes; the first definition of a name counts). A file that dotenv
//!    syntax rejects but the original borg accepted, typically for an unquoted value with
//!    spaces such as `PIPELINE_TEST_CMD=zig build test`, is read with the original borg's
//!    rules instead: one `NAME=value` per line, the value taken literally after trimming
//!    blanks and one pair of matching quotes.
//!
//! This is the precedence of `dotenvy::dotenv()`, but nothing is written into the process
//! environment, so secrets from `.env` are not inherited by the agents borg spawns.
//! A variable set in the environment counts even when it is empty, which makes
//! `NAME= borg run` a way to fall back to the default despite `.env`.
//!
//! An empty value counts as unset, and an unset variable takes the default listed in
//! [`VARIABLES`] (which is parsed like any other value). Variables borg does not know are
//! ignored. Names and formats are those of the original borg, so an existing `.env` keeps
//! working; `BORG_ADMIN_USERS`, `WEB_BIND`, `WEB_TOKEN`, `LOG_FORMAT` and
//! `BORG_SHUTDOWN_TIMEOUT_S` are new. (A `.env` that binds the dashboard beyond loopback
//! now also needs `WEB_TOKEN`.)
//!
//! Relative paths (`DATA_DIR`, `WHATSAPP_AUTH_DIR`, `PIPELINE_REPO`, the paths in
//! `WATCHED_REPOS`) are resolved against `dir` by [`Config::load`], so they mean the same
//! whatever directory borg was started from. [`Config::from_lookup`] keeps them as given.
//!
//! # Errors
//!
//! A value borg cannot use stops the load with a [`ConfigError`] naming the variable, the
//! value and what is allowed: a typo must not silently become a default.
//! [`Config::from_lookup`] is the pure core, for tests and tools that must not depend on
//! the process environment.

mod env_file;
mod error;
mod parse;
#[cfg(test)]
mod tests;
mod vars;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
pub use vars::{VARIABLES, VarDoc, variable};

/// The daemon's settings. Each field's doc names its variable; see [`VARIABLES`] for
/// defaults and allowed values. `Debug` output redacts the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `TELEGRAM_BOT_TOKEN` (secret): lets the Telegram channel log in; no channel if unset.
    pub telegram_bot_token: Option<String>,
    /// `ASSISTANT_NAME`: the name people address the assistant by in group chats.
    pub assistant_name: String,
    /// `CLAUDE_MODEL`: which model the agents run, so it can change without a rebuild.
    pub claude_model: String,
    /// `PIPELINE_REPO`: the repository the pipeline improves, usually borg's own checkout.
    pub pipeline_repo: Option<PathBuf>,
    /// `PIPELINE_TEST_CMD`: the gate a change must pass before it is merged.
    pub pipeline_test_cmd: String,
    /// `WATCHED_REPOS`: more repositories for the pipeline, each with its own gate.
    pub watched_repos: Vec<WatchedRepo>,
    /// `PIPELINE_ADMIN_CHAT`: where pipeline reports go, so someone sees failures.
    pub pipeline_admin_chat: Option<String>,
    /// `BORG_ADMIN_USERS`: user ids allowed to run admin commands; nobody if empty.
    pub admin_users: Vec<String>,
    /// `RELEASE_INTERVAL_MINS`: batches merged work into releases instead of one per change.
    pub release_interval_mins: u64,
    /// `CONTINUOUS_MODE`: whether the pipeline starts work on its own.
    pub continuous_mode: bool,
    /// `COLLECTION_WINDOW_MS`: lets a burst of messages become one agent run.
    pub collection_window_ms: u64,
    /// `COOLDOWN_MS`: keeps one chat from starting agent runs back to back.
    pub cooldown_ms: u64,
    /// `AGENT_TIMEOUT_S`: bounds what a stuck agent can cost.
    pub agent_timeout_s: u64,
    /// `MAX_CONCURRENT_AGENTS`: bounds the load on the machine and the API.
    pub max_concurrent_agents: u32,
    /// `RATE_LIMIT_PER_MINUTE`: bounds what one chat can spend.
    pub rate_limit_per_minute: u32,
    /// `WEB_PORT`: the dashboard's port.
    pub web_port: u16,
    /// `WEB_BIND`: the dashboard's address; loopback by default.
    pub web_bind: IpAddr,
    /// `WEB_TOKEN` (secret): the bearer token every dashboard and API request must carry;
    /// required when `WEB_BIND` is not a loopback address, so borg is never controllable
    /// from the network without one.
    pub web_token: Option<String>,
    /// `WHATSAPP_ENABLED`: whether to start the WhatsApp channel.
    pub whatsapp_enabled: bool,
    /// `WHATSAPP_AUTH_DIR`: keeps the WhatsApp pairing across restarts.
    pub whatsapp_auth_dir: PathBuf,
    /// `DISCORD_ENABLED`: whether to start the Discord channel.
    pub discord_enabled: bool,
    /// `DISCORD_TOKEN` (secret): lets the Discord channel log in; required if enabled.
    pub discord_token: Option<String>,
    /// `DATA_DIR`: where the database and other state live.
    pub data_dir: PathBuf,
    /// `LOG_FORMAT`: readable logs on a terminal, JSON for a log collector.
    pub log_format: LogFormat,
    /// `BORG_SHUTDOWN_TIMEOUT_S`: how long an orderly shutdown may take before borg gives
    /// up on it, so a stuck actor cannot keep the daemon from exiting.
    pub shutdown_timeout_s: u64,
    /// `AGENT_IDLE_TIMEOUT_S`: stops an agent that hangs without output long before the hard
    /// `AGENT_TIMEOUT_S`.
    pub agent_idle_timeout_s: u64,
    /// `WHATSAPP_NODE`: the Node.js that runs the WhatsApp bridge.
    pub whatsapp_node: PathBuf,
    /// `WHATSAPP_NPM`: the npm that installs the bridge's packages.
    pub whatsapp_npm: PathBuf,
    /// `WHATSAPP_BRIDGE_CMD`: a bridge program to run instead of borg's own.
    pub whatsapp_bridge_cmd: Option<String>,
    /// `AGENT_SANDBOX`: containers, or plain processes where no engine runs.
    pub agent_sandbox: SandboxKind,
    /// `AGENT_IMAGE`: the image agent containers run.
    pub agent_image: String,
    /// `AGENT_NETWORK`: the network mode of agent containers.
    pub agent_network: String,
    /// `TEST_TIMEOUT_S`: the limit on one run of a repository's test command.
    pub test_timeout_s: u64,
    /// `CLAUDE_BIN`: which `claude` to run, for installs outside PATH and for tests.
    pub claude_bin: PathBuf,
    /// `TELEGRAM_API_URL`: where the Bot API lives, so tests can point at a local fake.
    pub telegram_api_url: Option<String>,
    /// `DISCORD_API_URL`: where Discord's REST API lives, for tests and proxies.
    pub discord_api_url: Option<String>,
    /// `DISCORD_GATEWAY_URL`: where the Discord gateway lives, for tests.
    pub discord_gateway_url: Option<String>,
    /// `AUTO_SEED`: whether idle repositories get tasks proposed by a seeding agent.
    pub auto_seed: bool,
    /// `SELF_UPDATE`: whether a release of `PIPELINE_REPO` rebuilds and restarts borg.
    pub self_update: SelfUpdate,
    /// `SELF_UPDATE_BUILD_CMD`: builds the new borg, in `PIPELINE_REPO`.
    pub self_update_build_cmd: String,
    /// `SELF_UPDATE_BINARY`: what the build produces (relative to `PIPELINE_REPO`).
    pub self_update_binary: PathBuf,
}

/// Whether borg rebuilds itself after a release (`SELF_UPDATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelfUpdate {
    /// Only when `PIPELINE_REPO` is borg's own source.
    #[default]
    Auto,
    On,
    Off,
}

/// One `WATCHED_REPOS` entry: `path:test_cmd[!manual]:prompt_file:mode:lint_cmd:slug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedRepo {
    /// The repository's checkout.
    pub path: PathBuf,
    /// The gate for this repository; `None` means `PIPELINE_TEST_CMD`
    /// (see [`Config::test_cmd_for`]).
    pub test_cmd: Option<String>,
    /// Whether passing changes are merged without a human; `!manual` makes this `false`.
    pub auto_merge: bool,
    /// A file with extra instructions for the agents working on this repository.
    pub prompt_file: Option<String>,
    /// The pipeline mode for this repository, interpreted by the pipeline.
    pub mode: Option<String>,
    /// A lint command run alongside the tests.
    pub lint_cmd: Option<String>,
    /// A short name for the repository in chats and on the dashboard.
    pub slug: Option<String>,
}

/// Where agents and test commands run (`AGENT_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxKind {
    /// A hardened container per run.
    #[default]
    Docker,
    /// A plain process on the host, in the task's worktree.
    Process,
}

impl SandboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxKind::Docker => "docker",
            SandboxKind::Process => "process",
        }
    }
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines, for a terminal or the journal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The value's spelling in `LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// Builds the configuration from `lookup`, which returns a variable's raw value or
    /// `None` if unset. Pure: reads nothing but `lookup`, which it calls once per entry of
    /// [`VARIABLES`]. Paths are kept as given.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.is_empty());
        let or_default =
            |name: &'static str| get(name).unwrap_or_else(|| vars::doc(name).default.to_owned());
        let flag = |name: &'static str| parse::boolean(name, &or_default(name));

        let data_dir = PathBuf::from(or_default("DATA_DIR"));
        let discord_enabled = flag("DISCORD_ENABLED")?;
        let discord_token = get("DISCORD_TOKEN");
        if discord_enabled && discord_token.is_none() {
            return Err(ConfigError::Missing {
                var: "DISCORD_TOKEN",
                reason: "required when DISCORD_ENABLED=true",
            });
        }
        let web_bind = parse::ip("WEB_BIND", &or_default("WEB_BIND"))?;
        let web_token = get("WEB_TOKEN");
        if !web_bind.is_loopback() && web_token.is_none() {
            return Err(ConfigError::Missing {
                var: "WEB_TOKEN",
                reason: "required when WEB_BIND is not a loopback address (127.0.0.1 or ::1): \
                         without it anyone who reaches the port controls borg; set WEB_TOKEN \
                         or bind WEB_BIND to 127.0.0.1",
            });
        }
        Ok(Config {
            telegram_bot_token: get("TELEGRAM_BOT_TOKEN"),
            assistant_name: parse::word("ASSISTANT_NAME", or_default("ASSISTANT_NAME"), Some(32))?,
            claude_model: parse::word("CLAUDE_MODEL", or_default("CLAUDE_MODEL"), None)?,
            pipeline_repo: get("PIPELINE_REPO").map(PathBuf::from),
            pipeline_test_cmd: or_default("PIPELINE_TEST_CMD"),
            watched_repos: match get("WATCHED_REPOS") {
                Some(raw) => parse::watched_repos("WATCHED_REPOS", &raw)?,
                None => Vec::new(),
            },
            pipeline_admin_chat: get("PIPELINE_ADMIN_CHAT")
                .map(|chat| parse::word("PIPELINE_ADMIN_CHAT", chat, None))
                .transpose()?,
            admin_users: match get("BORG_ADMIN_USERS") {
                Some(raw) => parse::word_list("BORG_ADMIN_USERS", &raw)?,
                None => Vec::new(),
            },
            release_interval_mins: number("RELEASE_INTERVAL_MINS", &or_default, 1, 10_080)?,
            continuous_mode: flag("CONTINUOUS_MODE")?,
            collection_window_ms: number("COLLECTION_WINDOW_MS", &or_default, 0, 600_000)?,
            cooldown_ms: number("COOLDOWN_MS", &or_default, 0, 86_400_000)?,
            agent_timeout_s: number("AGENT_TIMEOUT_S", &or_default, 1, 86_400)?,
            max_concurrent_agents: number("MAX_CONCURRENT_AGENTS", &or_default, 1, 64)?,
            rate_limit_per_minute: number("RATE_LIMIT_PER_MINUTE", &or_default, 1, 1_000)?,
            web_port: number("WEB_PORT", &or_default, 1, u16::MAX)?,
            web_bind,
            web_token,
            whatsapp_enabled: flag("WHATSAPP_ENABLED")?,
            whatsapp_auth_dir: get("WHATSAPP_AUTH_DIR")
                .map_or_else(|| data_dir.join("whatsapp-auth"), PathBuf::from),
            discord_enabled,
            discord_token,
            data_dir,
            log_format: parse::log_format("LOG_FORMAT", &or_default("LOG_FORMAT"))?,
            shutdown_timeout_s: number("BORG_SHUTDOWN_TIMEOUT_S", &or_default, 1, 3_600)?,
            agent_idle_timeout_s: number("AGENT_IDLE_TIMEOUT_S", &or_default, 1, 86_400)?,
            whatsapp_node: PathBuf::from(or_default("WHATSAPP_NODE")),
            whatsapp_npm: PathBuf::from(or_default("WHATSAPP_NPM")),
            whatsapp_bridge_cmd: get("WHATSAPP_BRIDGE_CMD")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
            agent_sandbox: parse::sandbox("AGENT_SANDBOX", &or_default("AGENT_SANDBOX"))?,
            agent_image: parse::word("AGENT_IMAGE", or_default("AGENT_IMAGE"), None)?,
            agent_network: parse::network("AGENT_NETWORK", &or_default("AGENT_NETWORK"))?,
            test_timeout_s: number("TEST_TIMEOUT_S", &or_default, 1, 86_400)?,
            claude_bin: PathBuf::from(or_default("CLAUDE_BIN")),
            telegram_api_url: get("TELEGRAM_API_URL")
                .map(|url| parse::url("TELEGRAM_API_URL", url, &["http://", "https://"]))
                .transpose()?,
            discord_api_url: get("DISCORD_API_URL")
                .map(|url| parse::url("DISCORD_API_URL", url, &["http://", "https://"]))
                .transpose()?,
            discord_gateway_url: get("DISCORD_GATEWAY_URL")
                .map(|url| parse::url("DISCORD_GATEWAY_URL", url, &["ws://", "wss://"]))
                .transpose()?,
            auto_seed: flag("AUTO_SEED")?,
            self_update: parse::self_update("SELF_UPDATE", &or_default("SELF_UPDATE"))?,
            self_update_build_cmd: or_default("SELF_UPDATE_BUILD_CMD").trim().to_owned(),
            self_update_binary: PathBuf::from(or_default("SELF_UPDATE_BINARY")),
        })
    }

    /// Loads the configuration from the process environment and `dir/.env` (see the
    /// [module docs](self) for precedence), resolving relative paths against `dir`.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        for doc in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(doc.name) {
                return Err(ConfigError::NotUnicode { var: doc.name });
            }
        }
        Self::load_with_env(dir, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `env` standing in for the process environment, so the
    /// precedence can be tested without changing the real one.
    pub fn load_with_env(
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = env_file::read(&dir.join(".env"))?;
        let mut config = Self::from_lookup(|name| env(name).or_else(|| file.get(name).cloned()))?;
        config.resolve_paths(dir);
        Ok(config)
    }

    /// Resolves every relative path against `dir` instead of the current directory.
    fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.whatsapp_auth_dir);
        if let Some(repo) = &mut self.pipeline_repo {
            resolve(repo);
            if self.self_update_binary.is_relative() {
                self.self_update_binary = repo.join(&self.self_update_binary);
            }
        }
        for repo in &mut self.watched_repos {
            resolve(&mut repo.path);
        }
    }

    /// The test command for `repo`: its own, else `PIPELINE_TEST_CMD`.
    pub fn test_cmd_for<'a>(&'a self, repo: &'a WatchedRepo) -> &'a str {
        repo.test_cmd.as_deref().unwrap_or(&self.pipeline_test_cmd)
    }

    /// `RELEASE_INTERVAL_MINS` as a duration.
    pub fn release_interval(&self) -> Duration {
        Duration::from_secs(self.release_interval_mins * 60)
    }

    /// `COLLECTION_WINDOW_MS` as a duration.
    pub fn collection_window(&self) -> Duration {
        Duration::from_millis(self.collection_window_ms)
    }

    /// `COOLDOWN_MS` as a duration.
    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }

    /// `AGENT_TIMEOUT_S` as a duration.
    pub fn agent_timeout(&self) -> Duration {
        Duration::from_secs(self.agent_timeout_s)
    }

    /// `AGENT_IDLE_TIMEOUT_S` as a duration.
    pub fn agent_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.agent_idle_timeout_s)
    }

    /// `BORG_SHUTDOWN_TIMEOUT_S` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_s)
    }

    /// The dashboard's socket address, `WEB_BIND`:`WEB_PORT`.
    pub fn web_addr(&self) -> SocketAddr {
        SocketAddr::new(self.web_bind, self.web_port)
    }
}

/// All defaults: what an empty environment and no `.env` give (paths not resolved).
impl Default for Config {
    fn default() -> Self {
        Config::from_lookup(|_| None).expect("the documented defaults are valid")
    }
}

/// `name`'s value or default, as a whole number in `min..=max`.
fn number<T>(
    name: &'static str,
    or_default: &impl Fn(&'static str) -> String,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: Copy + Into<u64> + TryFrom<u64>,
{
    parse::number(name, &or_default(name), min, max)
}

/// Shows a secret as `Some(<redacted>)`, never its value.
struct Redacted<'a>(&'a Option<String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("telegram_bot_token", &Redacted(&self.telegram_bot_token))
            .field("assistant_name", &self.assistant_name)
            .field("claude_model", &self.claude_model)
            .field("pipeline_repo", &self.pipeline_repo)
            .field("pipeline_test_cmd", &self.pipeline_test_cmd)
            .field("watched_repos", &self.watched_repos)
            .field("pipeline_admin_chat", &self.pipeline_admin_chat)
            .field("admin_users", &self.admin_users)
            .field("release_interval_mins", &self.release_interval_mins)
            .field("continuous_mode", &self.continuous_mode)
            .field("collection_window_ms", &self.collection_window_ms)
            .field("cooldown_ms", &self.cooldown_ms)
            .field("agent_timeout_s", &self.agent_timeout_s)
            .field("max_concurrent_agents", &self.max_concurrent_agents)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("web_port", &self.web_port)
            .field("web_bind", &self.web_bind)
            .field("web_token", &Redacted(&self.web_token))
            .field("whatsapp_enabled", &self.whatsapp_enabled)
            .field("whatsapp_auth_dir", &self.whatsapp_auth_dir)
            .field("discord_enabled", &self.discord_enabled)
            .field("discord_token", &Redacted(&self.discord_token))
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("shutdown_timeout_s", &self.shutdown_timeout_s)
            .field("agent_idle_timeout_s", &self.agent_idle_timeout_s)
            .field("whatsapp_node", &self.whatsapp_node)
            .field("whatsapp_npm", &self.whatsapp_npm)
            .field("whatsapp_bridge_cmd", &self.whatsapp_bridge_cmd)
            .field("agent_sandbox", &self.agent_sandbox)
            .field("agent_image", &self.agent_image)
            .field("agent_network", &self.agent_network)
            .field("test_timeout_s", &self.test_timeout_s)
            .field("claude_bin", &self.claude_bin)
            .field("telegram_api_url", &self.telegram_api_url)
            .field("discord_api_url", &self.discord_api_url)
            .field("discord_gateway_url", &self.discord_gateway_url)
            .field("auto_seed", &self.auto_seed)
            .field("self_update", &self.self_update)
            .field("self_update_build_cmd", &self.self_update_build_cmd)
            .field("self_update_binary", &self.self_update_binary)
            .finish()
    }
}
