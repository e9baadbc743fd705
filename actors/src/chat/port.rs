//! The `ChatTransport` port: what the chat actors need from a messaging platform, and the
//! platform-neutral shape of an incoming message. Telegram, Discord and WhatsApp adapters in
//! the daemon implement it; group actors never see a platform type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Which platform a chat lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Platform {
    Telegram,
    Discord,
    WhatsApp,
}

impl Platform {
    /// The prefix of chat ids on this platform (`tg:123`).
    pub fn prefix(self) -> &'static str {
        match self {
            Platform::Telegram => "tg",
            Platform::Discord => "discord",
            Platform::WhatsApp => "wa",
        }
    }

    /// The longest message the platform accepts, in characters.
    pub fn max_message_chars(self) -> usize {
        match self {
            Platform::Telegram => 4096,
            Platform::Discord => 2000,
            Platform::WhatsApp => 65_000,
        }
    }
}

/// A chat, globally unique across platforms: `tg:-100123`, `discord:98765`, `wa:123@g.us`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChatId(pub String);

impl ChatId {
    pub fn new(platform: Platform, native: impl fmt::Display) -> Self {
        ChatId(format!("{}:{native}", platform.prefix()))
    }

    /// The platform, from the prefix.
    pub fn platform(&self) -> Option<Platform> {
        let prefix = self.0.split(':').next()?;
        [Platform::Telegram, Platform::Discord, Platform::WhatsApp]
            .into_iter()
            .find(|p| p.prefix() == prefix)
    }

    /// The platform's own id, after the prefix.
    pub fn native(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, rest)| rest)
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message someone sent in a chat, as every transport reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    pub chat: ChatId,
    /// The chat's title (group name), or the person's name in a private chat.
    pub chat_title: String,
    /// A one-to-one chat with the bot.
    pub private: bool,
    /// The platform's message id, for replies.
    pub message_id: String,
    /// The sender's platform user id (prefixed like chat ids: `tg:42`).
    pub sender_id: String,
    pub sender_name: String,
    pub text: String,
    /// The platform marked a mention of the bot (an @username entity, a Discord mention).
    pub mentions_bot: bool,
    /// The message replies to one of the bot's messages.
    pub reply_to_bot: bool,
    /// When it was sent, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Why a transport could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The platform refused the text's formatting; sending it as plain text may work.
    Formatting(String),
    /// The platform rate-limited us; retry after this many seconds.
    RateLimited { retry_after_s: u64 },
    /// The chat is gone or the bot was removed from it.
    ChatUnavailable(String),
    /// Network or platform failure; worth retrying later.
    Unavailable(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Formatting(why) => write!(f, "formatting refused: {why}"),
            Self::RateLimited { retry_after_s } => write!(f, "rate limited for {retry_after_s} s"),
            Self::ChatUnavailable(why) => write!(f, "chat unavailable: {why}"),
            Self::Unavailable(why) => write!(f, "platform unavailable: {why}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// How a text should be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown, as agents write it; the transport converts or falls back to plain.
    Markdown,
    Plain,
}

/// A boxed future, so the port stays object safe.
pub type TransportFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + 'a>>;

/// Sending side of a platform. Receiving is the transport actor's own business: it turns
/// platform updates into [`IncomingMessage`]s and hands them to the chat router.
pub trait ChatTransport: Send + Sync + 'static {
    fn platform(&self) -> Platform;

    /// Sends one message (at most [`Platform::max_message_chars`]); returns its message id.
    fn send<'a>(
        &'a self,
        chat: &'a ChatId,
        text: &'a str,
        format: Format,
        reply_to: Option<&'a str>,
    ) -> TransportFuture<'a, String>;

    /// Replaces the text of a message the bot sent (for the progress message).
    fn edit<'a>(
        &'a self,
        chat: &'a ChatId,
        message_id: &'a str,
        text: &'a str,
    ) -> TransportFuture<'a, ()>;

    /// Shows "typing…" for a few seconds.
    fn typing<'a>(&'a self, chat: &'a ChatId) -> TransportFuture<'a, ()>;
}

/// Where a transport delivers what it receives (the chat router). Delivery must not block:
/// the router queues, and the returned [`Receipt`] says later whether the message was kept.
pub type InboundSink = std::sync::Arc<dyn Fn(IncomingMessage) -> Receipt + Send + Sync>;

/// The promise that travels with a message from the transport to whoever keeps it: kept
/// once the message is durably recorded, or deliberately not needed (a command answered, a
/// duplicate, a chat that is not registered). Dropped without [`Taken::kept`] when its
/// holder failed first (a save that failed, an actor that stopped): the transport must then
/// deliver the message again.
#[derive(Debug)]
pub struct Taken(Option<oneshot::Sender<()>>);

/// The transport's end of a [`Taken`]: resolves to whether the message was kept.
#[derive(Debug)]
#[must_use = "a transport that can deliver again must wait for the receipt"]
pub struct Receipt(oneshot::Receiver<()>);

impl Taken {
    /// A promise and the receipt that watches it.
    pub fn pair() -> (Taken, Receipt) {
        let (tx, rx) = oneshot::channel();
        (Taken(Some(tx)), Receipt(rx))
    }

    /// A promise nobody watches: messages that do not come from a transport (tests, tools).
    pub fn unwatched() -> Taken {
        Taken(None)
    }

    /// The message is safe: recorded durably, or not needed.
    pub fn kept(mut self) {
        if let Some(tx) = self.0.take() {
            // The transport may have stopped waiting; then nobody needs to know.
            let _ = tx.send(());
        }
    }
}

impl Receipt {
    /// Whether the message was kept; `false` once its holder failed or `deadline` passed.
    pub async fn kept_by(self, deadline: tokio::time::Instant) -> bool {
        matches!(tokio::time::timeout_at(deadline, self.0).await, Ok(Ok(())))
    }
}

/// Hands `msg` to `sink` for a transport that cannot have a message sent again (Discord's
/// gateway, the WhatsApp bridge): a loss there can only be logged, so it is, to be visible.
pub fn deliver_once(sink: &InboundSink, msg: IncomingMessage) {
    let (chat, message_id) = (msg.chat.clone(), msg.message_id.clone());
    let receipt = sink(msg);
    tokio::spawn(async move {
        if receipt.0.await.is_err() {
            tracing::warn!(%chat, %message_id, "a message was lost before it could be saved");
        }
    });
}
