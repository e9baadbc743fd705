//! Telegram `Message` → platform-neutral `IncomingMessage`.
//!
//! Entity offsets and lengths in the Bot API count UTF-16 code units, so a mention after an
//! emoji or in Hebrew text sits at a different byte offset than its `offset` says. teloxide's
//! own `parse_entities` converts them but panics on offsets that do not fall on a char
//! boundary; an update from the network must never take the poller down, so [`utf16_slice`]
//! does the conversion and answers `None` for nonsense.

use actors::chat::{ChatId, IncomingMessage, Platform};
use teloxide::types::{Chat, Message, MessageEntity, MessageEntityKind, User, UserId};

/// Who the bot is, from `getMe`: needed to recognise mentions of it and replies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: UserId,
    /// Without the `@`.
    pub username: String,
}

/// The `IncomingMessage` for `msg`, or `None` if it carries no text or caption (stickers,
/// joins, photos without caption): the chat actors only act on words.
pub fn to_incoming(msg: &Message, me: &BotIdentity) -> Option<IncomingMessage> {
    let (text, entities) = match (msg.text(), msg.caption()) {
        (Some(text), _) => (text, msg.entities()),
        (None, Some(caption)) => (caption, msg.caption_entities()),
        (None, None) => return None,
    };
    let (sender_id, sender_name) = sender(msg);
    Some(IncomingMessage {
        chat: ChatId::new(Platform::Telegram, msg.chat.id.0),
        chat_title: chat_title(&msg.chat),
        private: msg.chat.is_private(),
        message_id: msg.id.0.to_string(),
        sender_id,
        sender_name,
        text: text.to_owned(),
        mentions_bot: entities
            .unwrap_or_default()
            .iter()
            .any(|e| mentions(text, e, me)),
        reply_to_bot: msg
            .reply_to_message()
            .and_then(|m| m.from.as_ref())
            .is_some_and(|u| u.id == me.id),
        at_ms: u64::try_from(msg.date.timestamp_millis()).unwrap_or(0),
    })
}

/// Whether `entity` of `text` addresses the bot: `@name` (case-insensitive, as Telegram
/// resolves usernames), a text mention of its user (a name linked to it), or a command
/// addressed to it (`/status@name`).
fn mentions(text: &str, entity: &MessageEntity, me: &BotIdentity) -> bool {
    let slice = || utf16_slice(text, entity.offset, entity.length);
    match &entity.kind {
        MessageEntityKind::Mention => slice()
            .and_then(|s| s.strip_prefix('@'))
            .is_some_and(|name| name.eq_ignore_ascii_case(&me.username)),
        MessageEntityKind::TextMention { user } => user.id == me.id,
        MessageEntityKind::BotCommand => slice()
            .and_then(|s| s.split_once('@'))
            .is_some_and(|(_, name)| name.eq_ignore_ascii_case(&me.username)),
        _ => false,
    }
}

/// The part of `text` that a UTF-16 `offset` and `length` describe, or `None` if they run
/// past the end or cut a surrogate pair.
pub fn utf16_slice(text: &str, offset: usize, length: usize) -> Option<&str> {
    let end = offset.checked_add(length)?;
    let (mut start_byte, mut end_byte) = (None, None);
    let mut units = 0;
    for (byte, c) in text.char_indices().chain([(text.len(), '\0')]) {
        if units == offset {
            start_byte = Some(byte);
        }
        if units == end {
            end_byte = Some(byte);
            break;
        }
        if units > end {
            break;
        }
        units += c.len_utf16();
    }
    Some(&text[start_byte?..end_byte?])
}

/// The sender's prefixed id and a display name. Anonymous group admins and channels post
/// "as the chat": then the chat is the sender.
fn sender(msg: &Message) -> (String, String) {
    if let Some(user) = &msg.from
        && msg.sender_chat.is_none()
    {
        return (
            format!("{}:{}", Platform::Telegram.prefix(), user.id),
            user_name(user),
        );
    }
    let chat = msg.sender_chat.as_ref().unwrap_or(&msg.chat);
    (
        format!("{}:{}", Platform::Telegram.prefix(), chat.id),
        chat_title(chat),
    )
}

/// First and last name, else the username, else the id: never empty.
fn user_name(user: &User) -> String {
    let full = user.full_name();
    if !full.trim().is_empty() {
        return full.trim().to_owned();
    }
    match &user.username {
        Some(name) => name.clone(),
        None => format!("{}:{}", Platform::Telegram.prefix(), user.id),
    }
}

/// A group's title, or the person's name in a private chat.
fn chat_title(chat: &Chat) -> String {
    if let Some(title) = chat.title() {
        return title.to_owned();
    }
    let name = [chat.first_name(), chat.last_name()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        return name;
    }
    chat.username()
        .map_or_else(|| chat.id.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> BotIdentity {
        BotIdentity {
            id: UserId(999),
            username: "BorgBot".into(),
        }
    }

    fn message(extra: serde_json::Value) -> Message {
        let mut base = json!({
            "message_id": 7,
            "date": 1_700_000_000,
            "chat": {"id": -1005, "type": "supergroup", "title": "Devs"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace"},
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).expect("test message must deserialize")
    }

    #[test]
    fn utf16_slices_respect_surrogates_and_bounds() {
        let text = "😀 שלום @bot";
        // 😀 is 2 units, then space, 4 Hebrew letters, space: the mention starts at 8.
        assert_eq!(utf16_slice(text, 8, 4), Some("@bot"));
        assert_eq!(utf16_slice(text, 0, 2), Some("😀"));
        assert_eq!(utf16_slice(text, 1, 2), None, "inside the surrogate pair");
        assert_eq!(utf16_slice(text, 8, 5), None, "past the end");
        assert_eq!(utf16_slice(text, 12, 0), Some(""));
        assert_eq!(utf16_slice(text, usize::MAX, 2), None);
    }

    #[test]
    fn group_message_with_mention_after_emoji() {
        let text = "🎉 مرحبا @borgbot please";
        let msg = message(json!({
            "text": text,
            "entities": [{"type": "mention", "offset": 9, "length": 8}],
        }));
        let got = to_incoming(&msg, &me()).unwrap();
        assert!(got.mentions_bot);
        assert!(!got.private && !got.reply_to_bot);
        assert_eq!(got.chat.0, "tg:-1005");
        assert_eq!(got.chat_title, "Devs");
        assert_eq!(got.sender_id, "tg:42");
        assert_eq!(got.sender_name, "Ada Lovelace");
        assert_eq!(got.message_id, "7");
        assert_eq!(got.at_ms, 1_700_000_000_000);
        assert_eq!(got.text, text);
    }

    #[test]
    fn byte_offsets_would_miss_the_mention() {
        // Offsets that would be right in bytes or chars but are wrong in UTF-16 units.
        let text = "🎉 مرحبا @borgbot";
        let chars = text.chars().take_while(|&c| c != '@').count();
        let msg = message(json!({
            "text": text,
            "entities": [{"type": "mention", "offset": chars, "length": 8}],
        }));
        assert!(!to_incoming(&msg, &me()).unwrap().mentions_bot);
    }

    #[test]
    fn other_mentions_and_commands() {
        let other = message(json!({
            "text": "@someone hi",
            "entities": [{"type": "mention", "offset": 0, "length": 8}],
        }));
        assert!(!to_incoming(&other, &me()).unwrap().mentions_bot);
        let command = message(json!({
            "text": "/status@BorgBot",
            "entities": [{"type": "bot_command", "offset": 0, "length": 15}],
        }));
        assert!(to_incoming(&command, &me()).unwrap().mentions_bot);
        let text_mention = message(json!({
            "text": "Borg, look",
            "entities": [{"type": "text_mention", "offset": 0, "length": 4,
                          "user": {"id": 999, "is_bot": true, "first_name": "Borg"}}],
        }));
        assert!(to_incoming(&text_mention, &me()).unwrap().mentions_bot);
    }

    #[test]
    fn replies_captions_private_and_textless() {
        let reply = message(json!({
            "text": "thanks",
            "reply_to_message": {"message_id": 6, "date": 1_699_999_999,
                "chat": {"id": -1005, "type": "supergroup", "title": "Devs"},
                "from": {"id": 999, "is_bot": true, "first_name": "Borg"}, "text": "done"},
        }));
        assert!(to_incoming(&reply, &me()).unwrap().reply_to_bot);
        let caption = message(json!({
            "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
            "caption": "look @BORGBOT",
            "caption_entities": [{"type": "mention", "offset": 5, "length": 8}],
        }));
        let got = to_incoming(&caption, &me()).unwrap();
        assert_eq!(got.text, "look @BORGBOT");
        assert!(got.mentions_bot);
        let private = message(json!({
            "chat": {"id": 42, "type": "private", "first_name": "Ada", "username": "ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "", "username": "ada"},
            "text": "hi",
        }));
        let got = to_incoming(&private, &me()).unwrap();
        assert!(got.private);
        assert_eq!(got.chat_title, "Ada");
        assert_eq!(got.sender_name, "ada");
        let sticker = message(json!({"sticker": {"file_id": "f", "file_unique_id": "u",
            "type": "regular", "width": 1, "height": 1, "is_animated": false, "is_video": false}}));
        assert!(to_incoming(&sticker, &me()).is_none());
    }

    #[test]
    fn nonsense_offsets_do_not_panic() {
        let msg = message(json!({
            "text": "😀",
            "entities": [{"type": "mention", "offset": 1, "length": 1},
                         {"type": "mention", "offset": 40, "length": 4},
                         {"type": "bot_command", "offset": 0, "length": 99}],
        }));
        assert!(!to_incoming(&msg, &me()).unwrap().mentions_bot);
    }
}
