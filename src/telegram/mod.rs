//! The Telegram adapter: [`TelegramTransport`] implements the chat actors' `ChatTransport`
//! port (send, edit, typing) and [`TelegramPoller`] is the actor that long-polls `getUpdates`
//! and hands each message to the chat router as an `IncomingMessage`.
//!
//! Both talk to the Bot API through teloxide's `Bot` (only its request layer: borg has its own
//! actors, so teloxide's dispatcher is not used). The API base URL can be pointed elsewhere,
//! which is how the tests run everything against a fake Bot API on 127.0.0.1.
//!
//! - `markdown.rs` turns agent Markdown into Telegram HTML (forgiving: only `<`, `>`, `&` need
//!   escaping, unlike MarkdownV2 which rejects any unescaped punctuation).
//! - `convert.rs` turns a Telegram `Message` into an `IncomingMessage` (mentions by UTF-16
//!   entity offsets, replies to the bot).
//! - `transport.rs` and `poller.rs` are the two halves named above.

mod convert;
mod markdown;
mod poller;
mod transport;

use std::fmt;

use actors::chat::TransportError;
use teloxide::{ApiError, Bot, RequestError};

pub use convert::{BotIdentity, to_incoming, utf16_slice};
pub use markdown::markdown_to_html;
pub use poller::{OFFSET_KEY, PollerArgs, PollerMsg, PollerStats, TelegramOffset, TelegramPoller};
pub use transport::TelegramTransport;

/// How to reach the Bot API.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The bot's secret token (`TELEGRAM_BOT_TOKEN`).
    pub token: String,
    /// Another Bot API server (`TELEGRAM_API_URL`: a local Bot API server, or a fake in tests);
    /// `None` means `https://api.telegram.org`.
    pub api_url: Option<String>,
}

// The token is a secret: never let it reach a log through `{:?}`.
impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// `TELEGRAM_API_URL` is not a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadApiUrl {
    pub url: String,
    pub reason: String,
}

impl fmt::Display for BadApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TELEGRAM_API_URL {:?} is not a valid URL ({}); use e.g. http://127.0.0.1:8081",
            self.url, self.reason
        )
    }
}

impl std::error::Error for BadApiUrl {}

impl TelegramConfig {
    pub fn new(token: impl Into<String>) -> Self {
        TelegramConfig {
            token: token.into(),
            api_url: None,
        }
    }

    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// A teloxide client for this configuration.
    pub fn bot(&self) -> Result<Bot, BadApiUrl> {
        let bot = Bot::new(self.token.clone());
        let Some(url) = &self.api_url else {
            return Ok(bot);
        };
        // teloxide joins paths as `{api_url}/bot{token}/...`; a trailing slash would make
        // `//bot...`, which real servers answer with 404.
        let trimmed = url.trim_end_matches('/');
        let parsed = trimmed.parse().map_err(|e| BadApiUrl {
            url: url.clone(),
            reason: format!("{e}"),
        })?;
        Ok(bot.set_api_url(parsed))
    }
}

/// Maps a Bot API failure onto the port's error classes, so the chat actors can decide
/// between retrying, giving up on the chat, and waiting out a rate limit.
pub fn transport_error(error: &RequestError) -> TransportError {
    match error {
        RequestError::RetryAfter(after) => TransportError::RateLimited {
            retry_after_s: after.seconds().into(),
        },
        RequestError::MigrateToChatId(to) => TransportError::ChatUnavailable(format!(
            "the group became supergroup {to}; the chat id changed"
        )),
        RequestError::Api(api) => match api {
            ApiError::CantParseEntities(why) => TransportError::Formatting(why.clone()),
            ApiError::ChatNotFound
            | ApiError::GroupDeactivated
            | ApiError::BotBlocked
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::UserDeactivated
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::NotEnoughRightsToPostMessages => {
                TransportError::ChatUnavailable(api.to_string())
            }
            ApiError::InvalidToken => TransportError::Unavailable(
                "Telegram refused the bot token; check TELEGRAM_BOT_TOKEN".into(),
            ),
            other => TransportError::Unavailable(other.to_string()),
        },
        RequestError::Network(e) => TransportError::Unavailable(format!("network: {e}")),
        RequestError::InvalidJson { source, .. } => {
            TransportError::Unavailable(format!("unexpected answer from the Bot API: {source}"))
        }
        RequestError::Io(e) => TransportError::Unavailable(format!("I/O: {e}")),
    }
}

/// Parses the native part of a `tg:<id>` chat id.
fn telegram_chat(chat: &actors::chat::ChatId) -> Result<teloxide::types::ChatId, TransportError> {
    match (chat.platform(), chat.native().parse::<i64>()) {
        (Some(actors::chat::Platform::Telegram), Ok(id)) => Ok(teloxide::types::ChatId(id)),
        _ => Err(TransportError::ChatUnavailable(format!(
            "{chat} is not a Telegram chat id (expected tg:<number>)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::chat::ChatId;

    #[test]
    fn debug_never_shows_the_token() {
        let config = TelegramConfig::new("123:SECRET").with_api_url("http://x");
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("http://x"));
    }

    #[test]
    fn api_url_trailing_slash_is_trimmed_and_garbage_named() {
        let bot = TelegramConfig::new("t")
            .with_api_url("http://127.0.0.1:9/")
            .bot()
            .unwrap();
        assert_eq!(bot.api_url().as_str(), "http://127.0.0.1:9/");
        let err = TelegramConfig::new("t")
            .with_api_url("not a url")
            .bot()
            .unwrap_err();
        assert!(err.to_string().contains("TELEGRAM_API_URL"), "{err}");
    }

    #[test]
    fn chat_ids_must_be_telegram_numbers() {
        assert_eq!(
            telegram_chat(&ChatId("tg:-100123".into())).unwrap(),
            teloxide::types::ChatId(-100123)
        );
        assert!(telegram_chat(&ChatId("discord:5".into())).is_err());
        assert!(telegram_chat(&ChatId("tg:abc".into())).is_err());
    }

    #[test]
    fn errors_map_to_port_classes() {
        use teloxide::types::Seconds;
        assert_eq!(
            transport_error(&RequestError::RetryAfter(Seconds::from_seconds(7))),
            TransportError::RateLimited { retry_after_s: 7 }
        );
        assert!(matches!(
            transport_error(&RequestError::Api(ApiError::ChatNotFound)),
            TransportError::ChatUnavailable(_)
        ));
        assert!(matches!(
            transport_error(&RequestError::Api(ApiError::BotKicked)),
            TransportError::ChatUnavailable(_)
        ));
        assert!(matches!(
            transport_error(&RequestError::Api(ApiError::Unknown("boom".into()))),
            TransportError::Unavailable(_)
        ));
    }
}
