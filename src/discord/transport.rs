//! [`DiscordTransport`]: the sending half of the Discord adapter, behind the chat actors'
//! `ChatTransport` port.
//!
//! Discord renders Markdown itself, so `Format::Markdown` goes out unchanged. `Format::Plain`
//! goes out unchanged too: borg's plain texts are status lines and command answers, where
//! backslash escapes would do more harm (paths, URLs) than the odd stray `*`.
//!
//! Every message is sent with mentions switched off except the ping of the person replied
//! to: an agent's answer that quotes `@everyone` or a role must not page a whole server.

use std::future::Future;
use std::sync::Arc;

use actors::chat::split::{parts_within, split_message, utf16_len};
use actors::chat::{ChatId, ChatTransport, Format, Platform, TransportError, TransportFuture};
use serenity::builder::{CreateAllowedMentions, CreateMessage, EditMessage};
use serenity::http::Http;
use serenity::model::channel::{MessageReference, MessageReferenceKind};
use serenity::model::id::{ChannelId, MessageId};

use super::{BadDiscordSetting, DiscordConfig, REQUEST_TIMEOUT, discord_channel, transport_error};

/// Sends, edits and shows typing in Discord channels. Cheap to clone.
#[derive(Clone)]
pub struct DiscordTransport {
    http: Arc<Http>,
}

impl DiscordTransport {
    pub fn new(config: &DiscordConfig) -> Result<Self, BadDiscordSetting> {
        Ok(Self::from_http(Arc::new(config.http()?)))
    }

    pub fn from_http(http: Arc<Http>) -> Self {
        DiscordTransport { http }
    }

    async fn send_one(
        &self,
        channel: ChannelId,
        text: &str,
        reply_to: Option<MessageId>,
    ) -> Result<MessageId, TransportError> {
        let mut message = CreateMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new().replied_user(true));
        if let Some(id) = reply_to {
            // The message replied to may have been deleted meanwhile; the answer still matters.
            let reference = MessageReference::new(MessageReferenceKind::Default, channel)
                .message_id(id)
                .fail_if_not_exists(false);
            message = message.reference_message(reference);
        }
        let sent = bounded(channel.send_message(&self.http, message)).await?;
        Ok(sent.id)
    }
}

/// Runs one REST call with [`REQUEST_TIMEOUT`], mapping its failure to the port's classes.
async fn bounded<T>(
    call: impl Future<Output = Result<T, serenity::Error>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| transport_error(&e)),
        Err(_) => Err(TransportError::Unavailable(format!(
            "Discord did not answer within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

/// A message id from the port, or `None` if it is not a snowflake (serenity panics on 0).
fn message_id(id: &str) -> Option<MessageId> {
    id.parse::<u64>()
        .ok()
        .filter(|&id| id != 0)
        .map(MessageId::new)
}

impl ChatTransport for DiscordTransport {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    fn send<'a>(
        &'a self,
        chat: &'a ChatId,
        text: &'a str,
        // Both formats go out as they are: see the module docs.
        _format: Format,
        reply_to: Option<&'a str>,
    ) -> TransportFuture<'a, String> {
        Box::pin(async move {
            let channel = discord_channel(chat)?;
            let mut reply_to = reply_to.and_then(|id| {
                let parsed = message_id(id);
                if parsed.is_none() {
                    tracing::warn!(%chat, id, "not a Discord message id; sending without reply");
                }
                parsed
            });
            let parts = parts_within(chat, text, Platform::Discord.max_message_chars());
            let mut last = None;
            for part in &parts {
                // Only the first part answers the message; the rest follow it.
                last = Some(self.send_one(channel, part, reply_to.take()).await?);
            }
            last.map(|id| id.to_string())
                .ok_or_else(|| TransportError::Formatting("an empty message cannot be sent".into()))
        })
    }

    fn edit<'a>(
        &'a self,
        chat: &'a ChatId,
        message_id_text: &'a str,
        text: &'a str,
    ) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let channel = discord_channel(chat)?;
            let id = message_id(message_id_text).ok_or_else(|| {
                TransportError::ChatUnavailable(format!(
                    "{message_id_text:?} is not a Discord message id"
                ))
            })?;
            // An edit cannot become two messages: keep what fits.
            let limit = Platform::Discord.max_message_chars();
            let text = match utf16_len(text) > limit {
                true => split_message(text, limit).swap_remove(0),
                false => text.to_owned(),
            };
            let edit = EditMessage::new()
                .content(text)
                .allowed_mentions(CreateAllowedMentions::new());
            bounded(channel.edit_message(&self.http, id, edit))
                .await
                .map(|_| ())
        })
    }

    fn typing<'a>(&'a self, chat: &'a ChatId) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let channel = discord_channel(chat)?;
            bounded(channel.broadcast_typing(&self.http)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_must_be_snowflakes() {
        assert_eq!(message_id("1234"), Some(MessageId::new(1234)));
        assert_eq!(message_id("0"), None);
        assert_eq!(message_id("-5"), None);
        assert_eq!(message_id("abc"), None);
    }
}
