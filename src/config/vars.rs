//! The table of every variable borg reads: the single place where names, defaults and
//! allowed values are written down for humans.
//!
//! [`Config::from_lookup`](super::Config::from_lookup) parses the `default` column itself
//! for every variable with a literal default, and error messages quote the `allowed`
//! column, so the documentation cannot drift from what the code does.

/// One configuration variable, as shown by the README and `borg config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarDoc {
    /// The environment / `.env` variable name.
    pub name: &'static str,
    /// The default as shown to humans. A literal value (e.g. `3000`) is exactly what is
    /// parsed when the variable is unset; text in parentheses or starting with `$` describes
    /// a default that is not a literal (`(unset)`, `(none)`, `$DATA_DIR/whatsapp-auth`).
    pub default: &'static str,
    /// The values accepted, phrased to follow "expected" in error messages.
    pub allowed: &'static str,
    /// What the variable does, in one or two sentences.
    pub meaning: &'static str,
}

impl VarDoc {
    /// Whether `default` is a literal value that is parsed like a user-given one.
    pub fn has_literal_default(&self) -> bool {
        !(self.default.starts_with('(') || self.default.starts_with('$'))
    }
}

const BOOL: &str = "true/false, 1/0, yes/no or on/off (any case)";

/// Every variable borg reads, in the order `borg config` prints them.
pub const VARIABLES: &[VarDoc] = &[
    VarDoc {
        name: "TELEGRAM_BOT_TOKEN",
        default: "(unset)",
        allowed: "a Telegram bot token",
        meaning: "Secret token of the Telegram bot; the Telegram channel is off when unset.",
    },
    VarDoc {
        name: "ASSISTANT_NAME",
        default: "Borg",
        allowed: "a name of 1 to 32 characters without whitespace",
        meaning: "Name the assistant answers to in chats (as in @Borg).",
    },
    VarDoc {
        name: "CLAUDE_MODEL",
        default: "claude-sonnet-4-6",
        allowed: "a model id without whitespace, e.g. claude-sonnet-4-6",
        meaning: "Claude model the coding agents run with.",
    },
    VarDoc {
        name: "PIPELINE_REPO",
        default: "(unset)",
        allowed: "a path to a git checkout",
        meaning: "Primary repository of the pipeline (usually borg's own checkout).",
    },
    VarDoc {
        name: "PIPELINE_TEST_CMD",
        default: "cargo test",
        allowed: "a shell command",
        meaning: "Command that must pass before the pipeline merges a change; also used \
                  for WATCHED_REPOS entries that name no test command.",
    },
    VarDoc {
        name: "WATCHED_REPOS",
        default: "(none)",
        allowed: "'|'-separated entries path:test_cmd[!manual]:prompt_file:mode:lint_cmd:slug \
                  where every field after path may be left out, and no field contains ':'",
        meaning: "Further repositories the pipeline works on. `!manual` after the test \
                  command means changes wait for a human to merge them.",
    },
    VarDoc {
        name: "PIPELINE_ADMIN_CHAT",
        default: "(unset)",
        allowed: "a chat id without whitespace, e.g. tg:12345, discord:987 or wa:123@g.us",
        meaning: "Chat that receives pipeline reports and release notices.",
    },
    VarDoc {
        name: "BORG_ADMIN_USERS",
        default: "(none)",
        allowed: "comma-separated user ids without whitespace, e.g. tg:12345,discord:987",
        meaning: "Users allowed to run admin commands.",
    },
    VarDoc {
        name: "RELEASE_INTERVAL_MINS",
        default: "180",
        allowed: "a whole number of minutes (1 to 10080)",
        meaning: "How often the pipeline releases finished work.",
    },
    VarDoc {
        name: "CONTINUOUS_MODE",
        default: "false",
        allowed: BOOL,
        meaning: "Let the pipeline start new work on its own instead of only on request.",
    },
    VarDoc {
        name: "COLLECTION_WINDOW_MS",
        default: "3000",
        allowed: "a whole number of milliseconds (0 to 600000)",
        meaning: "How long to wait for follow-up messages before a chat's messages are \
                  handed to an agent as one batch.",
    },
    VarDoc {
        name: "COOLDOWN_MS",
        default: "5000",
        allowed: "a whole number of milliseconds (0 to 86400000)",
        meaning: "Minimum pause between two agent runs for the same chat.",
    },
    VarDoc {
        name: "AGENT_TIMEOUT_S",
        default: "600",
        allowed: "a whole number of seconds (1 to 86400)",
        meaning: "An agent run still going after this long is stopped.",
    },
    VarDoc {
        name: "MAX_CONCURRENT_AGENTS",
        default: "4",
        allowed: "a whole number (1 to 64)",
        meaning: "Most agent runs at the same time; further work waits for a free slot.",
    },
    VarDoc {
        name: "RATE_LIMIT_PER_MINUTE",
        default: "5",
        allowed: "a whole number of messages (1 to 1000)",
        meaning: "Most agent-triggering messages one chat may send per minute.",
    },
    VarDoc {
        name: "WEB_PORT",
        default: "3131",
        allowed: "a TCP port number (1 to 65535)",
        meaning: "Port of the web dashboard.",
    },
    VarDoc {
        name: "WEB_BIND",
        default: "127.0.0.1",
        allowed: "an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::1",
        meaning: "Address the web dashboard listens on; the default keeps it on this machine.",
    },
    VarDoc {
        name: "WEB_TOKEN",
        default: "(unset)",
        allowed: "a secret of your choice (at least 16 characters recommended)",
        meaning: "Secret the dashboard and HTTP API require as `Authorization: Bearer <token>` \
                  (or `?token=`); required when WEB_BIND is not a loopback address.",
    },
    VarDoc {
        name: "WHATSAPP_ENABLED",
        default: "false",
        allowed: BOOL,
        meaning: "Turn the WhatsApp channel on.",
    },
    VarDoc {
        name: "WHATSAPP_AUTH_DIR",
        default: "$DATA_DIR/whatsapp-auth",
        allowed: "a directory path",
        meaning: "Where the WhatsApp session is kept, so a restart needs no new pairing.",
    },
    VarDoc {
        name: "DISCORD_ENABLED",
        default: "false",
        allowed: BOOL,
        meaning: "Turn the Discord channel on; needs DISCORD_TOKEN.",
    },
    VarDoc {
        name: "DISCORD_TOKEN",
        default: "(unset)",
        allowed: "a Discord bot token",
        meaning: "Secret token of the Discord bot.",
    },
    VarDoc {
        name: "DATA_DIR",
        default: "data",
        allowed: "a directory path",
        meaning: "Where borg keeps its database and other state.",
    },
    VarDoc {
        name: "LOG_FORMAT",
        default: "human",
        allowed: "human or json (any case)",
        meaning: "Log lines for people, or one JSON object per line for log collectors.",
    },
    VarDoc {
        name: "BORG_SHUTDOWN_TIMEOUT_S",
        default: "30",
        allowed: "a whole number of seconds (1 to 3600)",
        meaning: "How long `borg run` waits for the actor tree to stop in order before \
                  giving up.",
    },
    VarDoc {
        name: "AGENT_IDLE_TIMEOUT_S",
        default: "300",
        allowed: "a whole number of seconds (1 to 86400)",
        meaning: "An agent that prints nothing for this long is stopped (API retries count \
                  as output).",
    },
    VarDoc {
        name: "CLAUDE_BIN",
        default: "claude",
        allowed: "a command name on PATH or a path to the claude executable",
        meaning: "The Claude Code CLI that agents run.",
    },
    VarDoc {
        name: "TELEGRAM_API_URL",
        default: "(unset)",
        allowed: "an http:// or https:// URL",
        meaning: "Base URL of the Telegram Bot API, for tests and self-hosted Bot API servers; \
                  api.telegram.org when unset.",
    },
    VarDoc {
        name: "DISCORD_API_URL",
        default: "(unset)",
        allowed: "an http:// or https:// URL",
        meaning: "Base URL of Discord's REST API, for tests and proxies; discord.com when unset.",
    },
    VarDoc {
        name: "DISCORD_GATEWAY_URL",
        default: "(unset)",
        allowed: "a ws:// or wss:// URL",
        meaning: "Discord gateway address, for tests; asked from the REST API when unset.",
    },
    VarDoc {
        name: "WHATSAPP_NODE",
        default: "node",
        allowed: "a command name on PATH or a path",
        meaning: "The Node.js (20 or newer) that runs the WhatsApp bridge.",
    },
    VarDoc {
        name: "WHATSAPP_NPM",
        default: "npm",
        allowed: "a command name on PATH or a path",
        meaning: "The npm that installs the WhatsApp bridge's packages on its first start.",
    },
    VarDoc {
        name: "WHATSAPP_BRIDGE_CMD",
        default: "(unset)",
        allowed: "a program and its arguments, separated by spaces",
        meaning: "Runs this instead of borg's own WhatsApp bridge (tests, custom bridges); it \
                  must speak borg's bridge protocol.",
    },
    VarDoc {
        name: "AGENT_SANDBOX",
        default: "docker",
        allowed: "docker or process (any case)",
        meaning: "Where pipeline agents and test commands run: a hardened Docker container \
                  each, or a plain process on the host (for machines without an engine).",
    },
    VarDoc {
        name: "AGENT_IMAGE",
        default: "borg-agent:latest",
        allowed: "a Docker image name without whitespace",
        meaning: "The agent image, built from container/Dockerfile (`borg image build`).",
    },
    VarDoc {
        name: "AGENT_NETWORK",
        default: "bridge",
        allowed: "bridge, host or none",
        meaning: "Network of agent containers; `host` lets them reach a model proxy on the \
                  host's loopback.",
    },
    VarDoc {
        name: "TEST_TIMEOUT_S",
        default: "900",
        allowed: "a whole number of seconds (1 to 86400)",
        meaning: "A repository's test command is stopped after this long and counts as failed.",
    },
    VarDoc {
        name: "AUTO_SEED",
        default: "true",
        allowed: BOOL,
        meaning: "Let an idle repository's read-only seeding agent propose small tasks (at most \
                  5 waiting, once an hour per repository; every minute in CONTINUOUS_MODE).",
    },
    VarDoc {
        name: "SELF_UPDATE",
        default: "auto",
        allowed: "auto, true or false",
        meaning: "Rebuild and restart borg when a release advances PIPELINE_REPO; auto: only \
                  when PIPELINE_REPO is borg's own source (its Cargo.toml names package borg).",
    },
    VarDoc {
        name: "SELF_UPDATE_BUILD_CMD",
        default: "cargo build --release --locked",
        allowed: "a shell command",
        meaning: "Command run in PIPELINE_REPO to build the new borg before a self-update.",
    },
    VarDoc {
        name: "SELF_UPDATE_BINARY",
        default: "target/release/borg",
        allowed: "a path, relative to PIPELINE_REPO or absolute",
        meaning: "The binary SELF_UPDATE_BUILD_CMD produces, which borg restarts into.",
    },
];

/// The documentation of `name`, if borg reads such a variable.
pub fn variable(name: &str) -> Option<&'static VarDoc> {
    VARIABLES.iter().find(|doc| doc.name == name)
}

/// The documentation of a variable the code reads; every such name is in [`VARIABLES`]
/// (checked by a unit test), so a miss is a bug in this module.
pub(super) fn doc(name: &str) -> &'static VarDoc {
    variable(name).unwrap_or_else(|| panic!("{name} is read but missing from VARIABLES"))
}
