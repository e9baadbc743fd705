//! Turns a bridge's `message` into the platform-neutral `IncomingMessage`.
//!
//! Chats are `wa:<jid>` and senders `wa:<jid without device>`. A mention of the account's own
//! jid counts as a platform mention of the bot, whether the group used the phone-number jid
//! or the anonymous `@lid` one; a reply to one of its messages is a reply to the bot (the
//! bridge knows which messages are its own and says so in `reply_to_me`).

use actors::chat::{ChatId, IncomingMessage, Platform};

use super::protocol::{WaMessage, normalized_jid, same_user};

/// Who the bridge is logged in as (from `ready`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaIdentity {
    pub me: String,
    pub lid: Option<String>,
}

impl WaIdentity {
    /// Whether `jid` is this account.
    pub fn is_me(&self, jid: &str) -> bool {
        same_user(jid, &self.me) || self.lid.as_deref().is_some_and(|lid| same_user(jid, lid))
    }
}

/// The message as the chat actors see it; `None` for one without text.
pub fn to_incoming(msg: &WaMessage, me: &WaIdentity) -> Option<IncomingMessage> {
    if msg.text.trim().is_empty() {
        return None;
    }
    let sender = normalized_jid(&msg.sender);
    let sender_name = if msg.sender_name.trim().is_empty() {
        // No push name: the number is the best name there is.
        sender.split('@').next().unwrap_or_default().to_owned()
    } else {
        msg.sender_name.clone()
    };
    let chat_title = match (&msg.chat_name, msg.is_group) {
        (Some(name), _) if !name.trim().is_empty() => name.clone(),
        (_, true) => msg.chat.clone(),
        (_, false) => sender_name.clone(),
    };
    Some(IncomingMessage {
        chat: ChatId::new(Platform::WhatsApp, &msg.chat),
        chat_title,
        private: !msg.is_group,
        message_id: msg.id.clone(),
        sender_id: format!("{}:{sender}", Platform::WhatsApp.prefix()),
        sender_name,
        text: msg.text.clone(),
        mentions_bot: msg.mentions.iter().any(|jid| me.is_me(jid)),
        reply_to_bot: msg.reply_to_me,
        at_ms: msg.ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> WaIdentity {
        WaIdentity {
            me: "4915:7@s.whatsapp.net".into(),
            lid: Some("8800:7@lid".into()),
        }
    }

    fn group(text: &str, mentions: &[&str]) -> WaMessage {
        WaMessage {
            chat: "1203@g.us".into(),
            id: "M1".into(),
            sender: "4916:2@s.whatsapp.net".into(),
            sender_name: "Ada".into(),
            text: text.into(),
            mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
            reply_to_me: false,
            is_group: true,
            ts: 1_700_000_000_000,
            chat_name: Some("Team".into()),
        }
    }

    #[test]
    fn a_mention_of_the_own_jid_or_lid_is_a_platform_mention() {
        let by_number = to_incoming(&group("@4915 hi", &["4915@s.whatsapp.net"]), &me()).unwrap();
        assert!(by_number.mentions_bot);
        let by_lid = to_incoming(&group("@8800 hi", &["8800@lid"]), &me()).unwrap();
        assert!(by_lid.mentions_bot);
        let other = to_incoming(&group("@4917 hi", &["4917@s.whatsapp.net"]), &me()).unwrap();
        assert!(!other.mentions_bot);
        assert_eq!(
            (by_number.chat.0.as_str(), by_number.chat_title.as_str()),
            ("wa:1203@g.us", "Team")
        );
        assert_eq!(by_number.sender_id, "wa:4916@s.whatsapp.net");
        assert!(!by_number.private);
    }

    #[test]
    fn private_chats_replies_and_missing_names() {
        let mut msg = group("hello", &[]);
        msg.chat = "4916@s.whatsapp.net".into();
        msg.is_group = false;
        msg.chat_name = None;
        msg.sender_name = String::new();
        msg.reply_to_me = true;
        let got = to_incoming(&msg, &me()).unwrap();
        assert!(got.private && got.reply_to_bot);
        assert_eq!(
            (got.sender_name.as_str(), got.chat_title.as_str()),
            ("4916", "4916")
        );
        msg.text = "  ".into();
        assert!(to_incoming(&msg, &me()).is_none());
    }
}
