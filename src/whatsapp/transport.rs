//! [`WhatsAppTransport`]: the sending half of the WhatsApp adapter, behind the chat actors'
//! `ChatTransport` port.
//!
//! A send becomes a `send` command with a fresh request id; the bridge answers `sent` with
//! WhatsApp's message id, or `error`. The answer is awaited for `send_timeout`: a bridge
//! that never answers makes the send fail with an error saying so, and a bridge that goes
//! away fails it at once (see `link.rs`). Nothing is sent while WhatsApp is not connected
//! (still pairing, or between restarts): the error says what to do instead.
//!
//! WhatsApp shows its own light markup (`*bold*`, `_italic_`), close enough to the agents'
//! Markdown that both formats go out unchanged.

use std::time::Duration;

use actors::chat::split::{parts_within, split_message, utf16_len};
use actors::chat::{ChatId, ChatTransport, Format, Platform, TransportError, TransportFuture};

use super::link::{Phase, WhatsAppLink};
use super::protocol::BridgeCommand;

/// Sends, edits and shows typing in WhatsApp chats through the bridge. Cheap to clone.
#[derive(Clone)]
pub struct WhatsAppTransport {
    link: WhatsAppLink,
    send_timeout: Duration,
}

impl WhatsAppTransport {
    pub fn new(link: WhatsAppLink, send_timeout: Duration) -> Self {
        WhatsAppTransport { link, send_timeout }
    }

    pub fn link(&self) -> &WhatsAppLink {
        &self.link
    }

    /// Fails unless WhatsApp is connected, naming what is going on instead.
    fn ready(&self) -> Result<(), TransportError> {
        let status = self.link.status();
        let why = match status.phase {
            Phase::Connected => return Ok(()),
            Phase::Pairing => "WhatsApp is not paired yet: scan the QR code borg printed \
                               (WhatsApp → Settings → Linked devices → Link a device)"
                .to_owned(),
            Phase::Installing => "the WhatsApp bridge is still being installed".to_owned(),
            Phase::Starting => "WhatsApp is still connecting".to_owned(),
            Phase::Stopped => match status.last_error {
                Some(why) => format!("the WhatsApp bridge is not running: {why}"),
                None => "the WhatsApp bridge is not running".to_owned(),
            },
        };
        Err(TransportError::Unavailable(why))
    }

    /// Sends a command that WhatsApp confirms, and waits for the confirmation.
    async fn confirmed(
        &self,
        what: &str,
        make: impl FnOnce(u64) -> BridgeCommand,
    ) -> Result<String, TransportError> {
        self.ready()?;
        let (req, answer) = self.link.request(make)?;
        match tokio::time::timeout(self.send_timeout, answer).await {
            Ok(Ok(result)) => result,
            // The link dropped the reply without answering: the bridge is gone.
            Ok(Err(_)) => Err(TransportError::Unavailable(format!(
                "the WhatsApp bridge stopped before confirming the {what}"
            ))),
            Err(_) => {
                self.link.abandon(req);
                Err(TransportError::Unavailable(format!(
                    "the WhatsApp bridge did not confirm the {what} within {:?} (request {req}); \
                     it may or may not have been delivered",
                    self.send_timeout
                )))
            }
        }
    }
}

/// The jid in a `wa:<jid>` chat id.
fn wa_jid(chat: &ChatId) -> Result<&str, TransportError> {
    match (chat.platform(), chat.native()) {
        (Some(Platform::WhatsApp), jid) if jid.contains('@') => Ok(jid),
        _ => Err(TransportError::ChatUnavailable(format!(
            "{chat} is not a WhatsApp chat id (expected wa:<jid>, e.g. wa:1203…@g.us)"
        ))),
    }
}

impl ChatTransport for WhatsAppTransport {
    fn platform(&self) -> Platform {
        Platform::WhatsApp
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
            let jid = wa_jid(chat)?;
            let mut reply_to = reply_to.map(str::to_owned);
            let mut last = None;
            for part in parts_within(chat, text, Platform::WhatsApp.max_message_chars()) {
                // Only the first part quotes the message; the rest follow it.
                let reply_to = reply_to.take();
                let id = self
                    .confirmed("message", |req| BridgeCommand::Send {
                        req,
                        chat: jid.to_owned(),
                        text: part,
                        reply_to,
                    })
                    .await?;
                last = Some(id);
            }
            last.ok_or_else(|| TransportError::Formatting("an empty message cannot be sent".into()))
        })
    }

    fn edit<'a>(
        &'a self,
        chat: &'a ChatId,
        message_id: &'a str,
        text: &'a str,
    ) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let jid = wa_jid(chat)?;
            // An edit cannot become two messages: keep what fits.
            let limit = Platform::WhatsApp.max_message_chars();
            let text = match utf16_len(text) > limit {
                true => split_message(text, limit).swap_remove(0),
                false => text.to_owned(),
            };
            self.confirmed("edit", |req| BridgeCommand::Edit {
                req,
                chat: jid.to_owned(),
                id: message_id.to_owned(),
                text,
            })
            .await
            .map(|_| ())
        })
    }

    fn typing<'a>(&'a self, chat: &'a ChatId) -> TransportFuture<'a, ()> {
        Box::pin(async move {
            let jid = wa_jid(chat)?;
            self.ready()?;
            // Not confirmed: a lost "typing…" is not worth a round trip.
            self.link.push(BridgeCommand::Typing {
                chat: jid.to_owned(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_must_be_whatsapp_jids() {
        assert_eq!(wa_jid(&ChatId("wa:1203@g.us".into())).unwrap(), "1203@g.us");
        assert!(wa_jid(&ChatId("tg:1203".into())).is_err());
        assert!(wa_jid(&ChatId("wa:1203".into())).is_err());
    }

    #[tokio::test]
    async fn nothing_is_sent_while_pairing() {
        let link = WhatsAppLink::new();
        let (tx, mut rx) = super::super::link::command_queue();
        link.attach(tx);
        link.update_status(|s| s.phase = Phase::Pairing);
        let transport = WhatsAppTransport::new(link, Duration::from_secs(1));
        let err = transport
            .send(&ChatId("wa:1@g.us".into()), "hi", Format::Plain, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("QR code"), "{err}");
        assert!(rx.try_recv().is_err(), "nothing queued");
    }
}
