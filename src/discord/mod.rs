//! The Discord adapter: [`DiscordTransport`] implements the chat actors' `ChatTransport` port
//! (send, edit, typing) and [`DiscordGateway`] is the actor that holds the gateway WebSocket
//! and hands each message to the chat router as an `IncomingMessage`.
//!
//! Both go through serenity: its `Http` for REST, its `Client` (shard manager and event
//! handler) for the gateway. Serenity's framework and cache are not used: borg has its own
//! actors, and nothing here needs more than what a MESSAGE_CREATE event carries.
//!
//! The REST base URL (`DISCORD_API_URL`) and the gateway URL (`DISCORD_GATEWAY_URL`) can be
//! pointed elsewhere, which is how the tests run everything against a fake Discord on
//! 127.0.0.1.
//!
//! - `convert.rs` turns a serenity `Message` into an `IncomingMessage` (mentions, replies to
//!   the bot, DMs).
//! - `transport.rs` and `gateway.rs` are the two halves named above.
//! - `client.rs` wraps serenity's gateway client for the actor: start, forward events, and
//!   close for sure (serenity's shard manager can leave a connection running otherwise).

mod client;
mod convert;
mod gateway;
mod messages;
mod transport;

use std::fmt;
use std::time::Duration;

use actors::chat::{ChatId, Platform, TransportError};
use serenity::http::{Http, HttpBuilder, HttpError};
use serenity::model::gateway::GatewayIntents;
use serenity::model::id::ChannelId;

pub use convert::{readable_text, to_incoming};
pub use gateway::{DiscordGateway, GatewayArgs, GatewayMsg, GatewayStats};
pub use transport::DiscordTransport;

/// What the gateway must send: guild and DM messages, with their text. MESSAGE_CONTENT is
/// privileged: without it (or without switching it on in the Developer Portal) Discord sends
/// guild messages with an empty `content` unless they mention the bot.
pub const INTENTS: GatewayIntents = GatewayIntents::GUILD_MESSAGES
    .union(GatewayIntents::DIRECT_MESSAGES)
    .union(GatewayIntents::MESSAGE_CONTENT);

/// How long one REST call may take. serenity's HTTP client sets no timeout of its own, and a
/// request lost in a network black hole would otherwise hang its caller for good.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a rate-limited request reports as its wait when Discord's own figure is lost:
/// serenity drops both the `Retry-After` header and the body's `retry_after` of a 429 it hands
/// back. Discord's per-route windows are a few seconds.
pub const RATE_LIMIT_FALLBACK_S: u64 = 5;

/// How to reach Discord.
#[derive(Clone)]
pub struct DiscordConfig {
    /// The bot's secret token (`DISCORD_TOKEN`), without the `Bot ` prefix (added if missing).
    pub token: String,
    /// Another REST base (`DISCORD_API_URL`: a proxy, or a fake in tests), in the form
    /// `http://host:port`; `None` means `https://discord.com`.
    pub api_url: Option<String>,
    /// Another gateway (`DISCORD_GATEWAY_URL`, `ws://host:port/path`); `None` means the one
    /// `GET /gateway/bot` names.
    pub gateway_url: Option<String>,
}

// The token is a secret: never let it reach a log through `{:?}`.
impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

/// A setting that cannot work, named so the user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDiscordSetting(pub String);

impl fmt::Display for BadDiscordSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadDiscordSetting {}

impl DiscordConfig {
    pub fn new(token: impl Into<String>) -> Self {
        DiscordConfig {
            token: token.into(),
            api_url: None,
            gateway_url: None,
        }
    }

    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    pub fn with_gateway_url(mut self, url: impl Into<String>) -> Self {
        self.gateway_url = Some(url.into());
        self
    }

    /// Checks the settings without touching the network.
    pub fn validate(&self) -> Result<(), BadDiscordSetting> {
        if self.token.trim().is_empty() {
            return Err(BadDiscordSetting("DISCORD_TOKEN is empty".into()));
        }
        if let Some(url) = &self.api_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(BadDiscordSetting(format!(
                "DISCORD_API_URL {url:?} must start with http:// or https://; \
                 use e.g. http://127.0.0.1:8080"
            )));
        }
        if let Some(url) = &self.gateway_url
            && (!(url.starts_with("ws://") || url.starts_with("wss://")) || url.contains('?'))
        {
            // serenity appends `?v=10` itself: a query of our own would break it.
            return Err(BadDiscordSetting(format!(
                "DISCORD_GATEWAY_URL {url:?} must start with ws:// or wss:// and carry no \
                 query; use e.g. wss://gateway.discord.gg"
            )));
        }
        Ok(())
    }

    /// A serenity REST client for this configuration.
    ///
    /// Against Discord itself serenity's ratelimiter stays on: it paces every route's bucket
    /// before sending (the parts of a split answer never trip the 5-per-5-s channel limit)
    /// and waits out a 429 itself. With `DISCORD_API_URL` set it must be off: serenity's
    /// ratelimiter builds its URLs without the proxy and would talk to discord.com anyway.
    /// Then a 429 reaches the caller as `RateLimited`.
    pub fn http(&self) -> Result<Http, BadDiscordSetting> {
        self.validate()?;
        let builder = HttpBuilder::new(self.token.trim());
        Ok(match &self.api_url {
            None => builder.build(),
            // serenity swaps `https://discord.com` for this; a trailing slash would double.
            Some(url) => builder
                .proxy(url.trim_end_matches('/'))
                .ratelimiter_disabled(true)
                .build(),
        })
    }
}

/// JSON error codes Discord answers when the bot cannot use a channel any more.
mod codes {
    pub const UNKNOWN_CHANNEL: isize = 10003;
    pub const MISSING_ACCESS: isize = 50001;
    pub const CANNOT_DM_USER: isize = 50007;
    pub const MISSING_PERMISSIONS: isize = 50013;
}

/// Maps a serenity failure onto the port's error classes, so the chat actors can decide
/// between retrying, giving up on the chat, and waiting out a rate limit.
pub fn transport_error(error: &serenity::Error) -> TransportError {
    use serenity::Error;
    match error {
        Error::Http(HttpError::UnsuccessfulRequest(answer)) => {
            let status = answer.status_code.as_u16();
            let (code, message) = (answer.error.code, &answer.error.message);
            match status {
                429 => TransportError::RateLimited {
                    retry_after_s: RATE_LIMIT_FALLBACK_S,
                },
                401 => TransportError::Unavailable(token_refused()),
                403 => TransportError::ChatUnavailable(format!("{message} (code {code})")),
                _ if matches!(
                    code,
                    codes::UNKNOWN_CHANNEL
                        | codes::MISSING_ACCESS
                        | codes::CANNOT_DM_USER
                        | codes::MISSING_PERMISSIONS
                ) =>
                {
                    TransportError::ChatUnavailable(format!("{message} (code {code})"))
                }
                _ => TransportError::Unavailable(format!(
                    "Discord answered {status}: {message} (code {code})"
                )),
            }
        }
        Error::Http(HttpError::Request(e)) => TransportError::Unavailable(format!("network: {e}")),
        Error::Model(e) => TransportError::Formatting(e.to_string()),
        other => TransportError::Unavailable(other.to_string()),
    }
}

fn token_refused() -> String {
    "Discord refused the bot token (401 Unauthorized); check DISCORD_TOKEN".into()
}

/// Parses the native part of a `discord:<id>` chat id.
fn discord_channel(chat: &ChatId) -> Result<ChannelId, TransportError> {
    match (chat.platform(), chat.native().parse::<u64>()) {
        // serenity's ids panic on 0, which is never a real snowflake.
        (Some(Platform::Discord), Ok(id)) if id != 0 => Ok(ChannelId::new(id)),
        _ => Err(TransportError::ChatUnavailable(format!(
            "{chat} is not a Discord chat id (expected discord:<channel id>)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let config = DiscordConfig::new("SECRET.token").with_api_url("http://x");
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("http://x"));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = DiscordConfig::new("t").with_api_url("127.0.0.1:9").http();
        assert!(err.unwrap_err().0.contains("DISCORD_API_URL"));
        let err = DiscordConfig::new("t")
            .with_gateway_url("ws://x/gateway?v=10")
            .validate();
        assert!(err.unwrap_err().0.contains("DISCORD_GATEWAY_URL"));
        assert!(
            DiscordConfig::new(" ")
                .validate()
                .unwrap_err()
                .0
                .contains("DISCORD_TOKEN")
        );
        let http = DiscordConfig::new("t")
            .with_api_url("http://127.0.0.1:9/")
            .http();
        let http = http.unwrap();
        assert_eq!(http.proxy.as_deref(), Some("http://127.0.0.1:9"));
        assert!(
            http.ratelimiter.is_none(),
            "serenity's ratelimiter ignores the proxy"
        );
        assert!(
            DiscordConfig::new("t")
                .http()
                .unwrap()
                .ratelimiter
                .is_some()
        );
    }

    #[test]
    fn chat_ids_must_be_discord_snowflakes() {
        let id = discord_channel(&ChatId("discord:42".into())).unwrap();
        assert_eq!(id.get(), 42);
        assert!(discord_channel(&ChatId("tg:42".into())).is_err());
        assert!(discord_channel(&ChatId("discord:0".into())).is_err());
        assert!(discord_channel(&ChatId("discord:abc".into())).is_err());
    }

    #[test]
    fn intents_include_message_content() {
        assert_eq!(INTENTS.bits(), (1 << 9) | (1 << 12) | (1 << 15));
    }
}
