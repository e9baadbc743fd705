//! WhatsApp through a bridge process (Baileys on Node) speaking line-delimited JSON.
//!
//! WhatsApp Web has no official API for personal accounts; Baileys, a Node library, speaks its
//! multi-device protocol. borg runs a small script on it as a child process (see
//! ARCHITECTURE.md, Decisions) and talks to it over stdin/stdout with the protocol defined in
//! `protocol.rs`. [`WhatsAppTransport`] implements the chat actors' `ChatTransport` port (send,
//! edit, typing) and [`WhatsAppBridge`] is the actor, supervised as `transport:whatsapp`, that
//! runs the process and hands each message to the chat router as an `IncomingMessage` with a
//! `wa:<jid>` chat id. The two share a [`WhatsAppLink`], which also holds the pairing QR code
//! for the dashboard.
//!
//! # Installing the bridge
//!
//! The script is compiled into borg (`bridge.mjs`, and `selftest.mjs` which only its
//! `--self-test` mode loads) and written at every start into
//! `whatsapp-bridge/` beside `WHATSAPP_AUTH_DIR` (by default `$DATA_DIR/whatsapp-bridge`),
//! with a `package.json` pinning `@whiskeysockets/baileys` [`BAILEYS_VERSION`] and
//! `qrcode-terminal`. The first start runs `npm install` there (a minute or two; later starts
//! reuse it), so the machine needs Node.js 20 or newer with npm, git, and access to the npm
//! registry and github.com (one Baileys dependency is fetched from GitHub). Without network,
//! install by hand once: `cd $DATA_DIR/whatsapp-bridge && npm install`. When npm is missing
//! or fails, the actor fails with npm's own words and the supervisor retries with backoff
//! behind a breaker.
//!
//! # Pairing
//!
//! On the first start the bridge receives pairing codes: each is printed to the terminal as a
//! QR code (borg's stderr), logged, and kept in the link ([`WhatsAppLink::qr`]). Scan it with
//! WhatsApp → Settings → Linked devices → Link a device. The session then lives in
//! `WHATSAPP_AUTH_DIR` (created private, 0700), so later starts need no pairing. If WhatsApp
//! unlinks the device, the session is moved aside and the next start pairs again.
//!
//! # Settings
//!
//! Besides `WHATSAPP_ENABLED` and `WHATSAPP_AUTH_DIR` (all in the configuration table, see
//! [`WhatsAppConfig::from_settings`]):
//! - `WHATSAPP_NODE` (default `node`): the Node.js executable that runs the bridge.
//! - `WHATSAPP_NPM` (default `npm`): the npm that installs its packages.
//! - `WHATSAPP_BRIDGE_CMD` (unset): a program to run instead of borg's own bridge, with
//!   whitespace-separated arguments (no quoting); borg appends `--auth-dir <dir>` and installs
//!   nothing. It must speak the protocol in `protocol.rs`. The tests use it for a fake bridge.
//!
//! # Files
//!
//! - `protocol.rs`: the line protocol as types; `convert.rs`: a bridge message → `IncomingMessage`.
//! - `install.rs`: script, `package.json` and npm; `process.rs`: the child process and its pipes.
//! - `link.rs`: what the transport and the actor share; `transport.rs` and `bridge.rs`: the
//!   two halves named above.

mod bridge;
mod convert;
mod install;
mod link;
mod process;
pub mod protocol;
mod transport;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bridge::{BridgeArgs, BridgeMsg, BridgeStats, WhatsAppBridge};
pub use convert::{WaIdentity, to_incoming};
pub use install::{
    BAILEYS_VERSION, BRIDGE_SCRIPT, QRCODE_TERMINAL_VERSION, package_json, write_scripts,
};
pub use link::{PairingQr, Phase, WhatsAppLink, WhatsAppStatus};
pub use transport::WhatsAppTransport;

use crate::config::Config;

/// What runs as the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeProgram {
    /// borg's own script on Node, its packages installed by npm into `dir`.
    Node {
        node: PathBuf,
        npm: PathBuf,
        dir: PathBuf,
    },
    /// Another program speaking the protocol (`WHATSAPP_BRIDGE_CMD`); nothing is installed.
    Command { program: PathBuf, args: Vec<String> },
}

impl BridgeProgram {
    /// For log lines and errors.
    pub fn describe(&self) -> String {
        match self {
            BridgeProgram::Node { node, dir, .. } => format!(
                "{} {}",
                node.display(),
                dir.join(install::SCRIPT_NAME).display()
            ),
            BridgeProgram::Command { program, args } => {
                let mut all = vec![program.display().to_string()];
                all.extend(args.iter().cloned());
                all.join(" ")
            }
        }
    }

    /// What the user can change when the bridge cannot start or is the wrong one.
    fn fix_hint(&self) -> String {
        match self {
            BridgeProgram::Node { node, .. } => format!(
                "the bridge needs Node.js 20 or newer: install it, or set WHATSAPP_NODE (now {})",
                node.display()
            ),
            BridgeProgram::Command { .. } => {
                "check the program WHATSAPP_BRIDGE_CMD names; it must speak borg's bridge protocol"
                    .into()
            }
        }
    }
}

/// How to run WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppConfig {
    /// `WHATSAPP_AUTH_DIR`: the session, kept across restarts.
    pub auth_dir: PathBuf,
    pub bridge: BridgeProgram,
    /// How long a send or edit waits for the bridge's confirmation. Sending to a large group
    /// for the first time fetches every member's keys, which takes seconds.
    pub send_timeout: Duration,
    /// How long a started bridge may take to say `hello` (Node boots slowly on a Pi).
    pub hello_timeout: Duration,
    /// How long the first `npm install` may take.
    pub install_timeout: Duration,
    /// How long a stopping bridge gets to save its session before it is killed; below the
    /// supervisor's 5 s shutdown timeout.
    pub shutdown_grace: Duration,
    /// Print pairing QR codes to stderr (off in tests that start many bridges).
    pub print_qr: bool,
}

/// A setting that cannot work, named so the user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadWhatsAppSetting(pub String);

impl std::fmt::Display for BadWhatsAppSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadWhatsAppSetting {}

impl WhatsAppConfig {
    /// borg's own bridge on `node` from PATH, installed beside `auth_dir`.
    pub fn with_node(auth_dir: impl Into<PathBuf>) -> Self {
        let auth_dir = auth_dir.into();
        let dir = bridge_dir(&auth_dir);
        Self::new(
            auth_dir,
            BridgeProgram::Node {
                node: "node".into(),
                npm: "npm".into(),
                dir,
            },
        )
    }

    /// Another program as the bridge.
    pub fn with_command(
        auth_dir: impl Into<PathBuf>,
        program: impl Into<PathBuf>,
        args: Vec<String>,
    ) -> Self {
        Self::new(
            auth_dir.into(),
            BridgeProgram::Command {
                program: program.into(),
                args,
            },
        )
    }

    fn new(auth_dir: PathBuf, bridge: BridgeProgram) -> Self {
        WhatsAppConfig {
            auth_dir,
            bridge,
            send_timeout: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(30),
            install_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(2),
            print_qr: true,
        }
    }

    /// From the daemon's configuration (`WHATSAPP_AUTH_DIR`, `WHATSAPP_NODE`, `WHATSAPP_NPM`,
    /// `WHATSAPP_BRIDGE_CMD`).
    pub fn from_settings(config: &Config) -> Result<Self, BadWhatsAppSetting> {
        let auth_dir = config.whatsapp_auth_dir.clone();
        if let Some(command) = &config.whatsapp_bridge_cmd {
            let mut words = command.split_whitespace().map(str::to_owned);
            let program = words
                .next()
                .ok_or_else(|| BadWhatsAppSetting("WHATSAPP_BRIDGE_CMD names no program".into()))?;
            return Ok(Self::with_command(auth_dir, program, words.collect()));
        }
        let mut settings = Self::with_node(auth_dir);
        if let BridgeProgram::Node { node, npm, .. } = &mut settings.bridge {
            node.clone_from(&config.whatsapp_node);
            npm.clone_from(&config.whatsapp_npm);
        }
        Ok(settings)
    }
}

/// `whatsapp-bridge` beside the auth directory.
fn bridge_dir(auth_dir: &Path) -> PathBuf {
    match auth_dir.parent() {
        Some(parent) => parent.join("whatsapp-bridge"),
        None => auth_dir.join("whatsapp-bridge"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_is_installed_beside_the_auth_dir() {
        let config = WhatsAppConfig::with_node("/data/whatsapp-auth");
        let BridgeProgram::Node { dir, node, .. } = &config.bridge else {
            panic!("node")
        };
        assert_eq!(dir, Path::new("/data/whatsapp-bridge"));
        assert_eq!(node, Path::new("node"));
        assert!(
            config
                .bridge
                .describe()
                .ends_with("/data/whatsapp-bridge/bridge.mjs")
        );
        assert!(config.shutdown_grace < Duration::from_secs(5));
    }
}
