//! [`TelegramTransport`]: the sending half of the Telegram adapter, behind the chat actors'
//! `ChatTransport` port.
//!
//! Markdown goes out as Telegram HTML; when Telegram refuses the entities ("can't parse
//! entities") the same text is sent again as plain text, so a formatting slip never loses an
//! answer. The count of such fallbacks is kept because a rising count means the converter has
//! a gap worth fixing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actors::chat::split::{parts_within, split_message, utf16_len};
use actors::chat::{ChatId, ChatTransport, Format, Platform, TransportError, TransportFuture};
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatAction, MessageId, ParseMode, ReplyParameters};
use teloxide::{ApiError, Bot, RequestError};

use super::{BadApiUrl, TelegramConfig, markdown_to_html, telegram_chat, transport_error};

/// Sends, edits and shows typing in Telegram chats. Cheap to clone; clones share counters.
#[derive(Clone)]
pub struct TelegramTransport {
    bot: Bot,
    /// Messages Telegram refused as formatted and that went out as plain text instead.
    format_fallbacks: Arc<AtomicU64>,
}

impl TelegramTransport {
    pub fn new(config: &TelegramConfig) -> Result<Self, BadApiUrl> {
        Ok(Self::from_bot(config.bot()?))
    }

    pub fn from_bot(bot: Bot) -> Self {
        TelegramTransport {
            bot,
            format_fallbacks: Arc::default(),
        }
    }

    /// How many formatted messages were resent as plain text since start.
    pub fn format_fallbacks(&self) -> u64 {
        self.format_fallbacks.load(Ordering::Relaxed)
    }

    /// Sends one message that fits Telegram's limit, formatted if asked, plain if refused.
    async fn send_one(
        &self,
        chat: teloxide::types::ChatId,
        text: &str,
        format: Format,
        reply_to: Option<MessageId>,
    ) -> Result<MessageId, TransportError> {
        if format == Format::Markdown {
            let html = markdown_to_html(text);
            match self
                .request(chat, &html, Some(ParseMode::Html), reply_to)
                .await
            {
                Err(RequestError::Api(ApiError::CantParseEntities(why))) => {
                    self.format_fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%chat, %why, "Telegram refused the HTML; sending plain text");
                }
                other => return other.map_err(|e| transport_error(&e)),
            }
        }
        self.request(chat, text, None, reply_to)
            .await
            .map_err(|e| transport_error(&e))
    }

    async fn request(
        &self,
        chat: teloxide::types::ChatId,
        text: &str,
        parse_mode: Option<ParseMode>,
        reply_to: Option<MessageId>,
    ) -> Result<MessageId, RequestError> {
        let mut request = self.bot.send_message(chat, text);
        if let Some(mode) = parse_mode {
            request = request.parse_mode(mode);
        }
        if let Some(id) = reply_to {
            // The message replied to may have been deleted meanwhile; the answer still matters.
            request =
                request.reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
        }
        Ok(request.await?.id)
    }
}

impl ChatTransport for TelegramTransport {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn send<'a>(
        &'a self,
        chat: &'a ChatId,
        text: &'a str,
        format: Format,
        reply_to: Option<&'a str>,
    ) -> TransportFuture<'a, String> {
        Box::pin(async move {
            let chat = telegram_chat(chat)?;
            let mut reply_to = reply_to.and_then(|id| match id.parse() {
                Ok(id) => Some(MessageId(id)),
                Err(_) => {
                    tracing::warn!(%chat, id, "not a Telegram message id; sending without reply");
                    None
                }
            });
            let parts = parts_within(&chat, text, Platform::Telegram.max_message_chars());
            let mut last = None;
            for part in &parts {
                // Only the first part answers the message; the rest follow it.
                last = Some(self.send_one(chat, part, format, reply_to.take()).await?);
            }
            last.map(|id| id.0.to_string())
                .ok_or_else(|| TransportError::Formatting("an empty message cannot be sent".into()))
        })
    }

    fn edit<'a>(
        &'a self,
        chat: &'a ChatId,
        message_id: &'a str,
        text: &'a str,
    ) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let chat = telegram_chat(chat)?;
            let id = message_id.parse().map(MessageId).map_err(|_| {
                TransportError::ChatUnavailable(format!(
                    "{message_id:?} is not a Telegram message id"
                ))
            })?;
            // An edit cannot become two messages: keep what fits.
            let limit = Platform::Telegram.max_message_chars();
            let text = match utf16_len(text) > limit {
                true => split_message(text, limit).swap_remove(0),
                false => text.to_owned(),
            };
            match self.bot.edit_message_text(chat, id, text).await {
                // Progress edits often repeat the same text; Telegram calls that an error.
                Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
                Err(e) => Err(transport_error(&e)),
            }
        })
    }

    fn typing<'a>(&'a self, chat: &'a ChatId) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let chat = telegram_chat(chat)?;
            self.bot
                .send_chat_action(chat, ChatAction::Typing)
                .await
                .map(|_| ())
                .map_err(|e| transport_error(&e))
        })
    }
}
