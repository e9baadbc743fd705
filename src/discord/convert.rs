//! Discord `Message` (from MESSAGE_CREATE) → platform-neutral `IncomingMessage`.
//!
//! Discord marks a mention of the bot twice: the user is listed in `mentions`, and the text
//! holds `<@id>` (or `<@!id>`, the old nickname form). Either counts. In the text handed on,
//! user mentions become `@name`, so the agent reads names rather than snowflakes.

use actors::chat::{ChatId, IncomingMessage, Platform};
use serenity::model::channel::{Message, MessageType};
use serenity::model::id::UserId;
use serenity::model::user::User;

/// The `IncomingMessage` for `msg`, or `None` for what borg does not act on: messages by bots
/// (itself included: its own answers come back through the gateway), webhooks, system
/// messages (joins, pins) and messages without text.
pub fn to_incoming(msg: &Message, me: UserId) -> Option<IncomingMessage> {
    if msg.author.bot || msg.author.id == me || msg.webhook_id.is_some() {
        return None;
    }
    if !matches!(msg.kind, MessageType::Regular | MessageType::InlineReply) {
        return None;
    }
    if msg.content.trim().is_empty() {
        return None;
    }
    let sender_name = display_name(&msg.author);
    // MESSAGE_CREATE carries a guild id for guild channels only: no guild means a DM.
    let private = msg.guild_id.is_none();
    Some(IncomingMessage {
        chat: ChatId::new(Platform::Discord, msg.channel_id),
        // The event has no channel name, and fetching one per channel would put a REST call
        // in front of the first message; the id is what the user sees in Discord's links.
        chat_title: match private {
            true => sender_name.clone(),
            false => format!("Discord channel {}", msg.channel_id),
        },
        private,
        message_id: msg.id.to_string(),
        sender_id: format!("{}:{}", Platform::Discord.prefix(), msg.author.id),
        sender_name,
        text: readable_text(&msg.content, &msg.mentions),
        mentions_bot: msg.mentions.iter().any(|u| u.id == me)
            || msg.content.contains(&format!("<@{me}>"))
            || msg.content.contains(&format!("<@!{me}>")),
        reply_to_bot: msg
            .referenced_message
            .as_ref()
            .is_some_and(|m| m.author.id == me),
        at_ms: u64::try_from(msg.timestamp.unix_timestamp())
            .unwrap_or(0)
            .saturating_mul(1000),
    })
}

/// `content` with each `<@id>` / `<@!id>` of a mentioned user replaced by `@name`.
pub fn readable_text(content: &str, mentions: &[User]) -> String {
    let mut text = content.to_owned();
    for user in mentions {
        let name = format!("@{}", display_name(user));
        text = text
            .replace(&format!("<@{}>", user.id), &name)
            .replace(&format!("<@!{}>", user.id), &name);
    }
    text
}

/// The global display name, else the username: what Discord shows for a user outside a guild.
fn display_name(user: &User) -> String {
    match &user.global_name {
        Some(name) if !name.trim().is_empty() => name.clone(),
        _ => user.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const ME: u64 = 999;

    fn user(id: u64, name: &str, bot: bool) -> Value {
        json!({"id": id.to_string(), "username": name, "global_name": null, "avatar": null,
               "bot": bot})
    }

    fn message(extra: Value) -> Message {
        let mut base = json!({
            "id": "1001", "channel_id": "555", "guild_id": "777",
            "author": {"id": "42", "username": "ada", "global_name": "Ada L", "avatar": null},
            "content": "hello", "timestamp": "2023-11-14T22:13:20.000000+00:00",
            "edited_timestamp": null, "tts": false, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0,
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).expect("test message must deserialize")
    }

    fn me() -> UserId {
        UserId::new(ME)
    }

    #[test]
    fn guild_message_mentioning_the_bot() {
        let msg = message(json!({"content": "<@999> look at <@!43>",
            "mentions": [user(ME, "borg", true), user(43, "grace", false)]}));
        let got = to_incoming(&msg, me()).unwrap();
        assert!(got.mentions_bot && !got.private && !got.reply_to_bot);
        assert_eq!(got.chat.0, "discord:555");
        assert_eq!(got.chat_title, "Discord channel 555");
        assert_eq!(
            (got.sender_id.as_str(), got.sender_name.as_str()),
            ("discord:42", "Ada L")
        );
        assert_eq!(got.message_id, "1001");
        assert_eq!(got.text, "@borg look at @grace");
        assert_eq!(got.at_ms, 1_700_000_000_000);
    }

    #[test]
    fn a_mention_in_the_text_alone_counts_and_others_do_not() {
        let text_only = message(json!({"content": "hey <@!999>"}));
        assert!(to_incoming(&text_only, me()).unwrap().mentions_bot);
        let other = message(json!({"content": "<@43> hi",
            "mentions": [user(43, "grace", false)]}));
        assert!(!to_incoming(&other, me()).unwrap().mentions_bot);
        let lookalike = message(json!({"content": "<@9990> hi"}));
        assert!(!to_incoming(&lookalike, me()).unwrap().mentions_bot);
    }

    #[test]
    fn dm_reply_and_username_fallback() {
        let dm = message(json!({"guild_id": null,
            "author": {"id": "42", "username": "ada", "global_name": null, "avatar": null}}));
        let got = to_incoming(&dm, me()).unwrap();
        assert!(got.private);
        assert_eq!(
            (got.chat_title.as_str(), got.sender_name.as_str()),
            ("ada", "ada")
        );

        let earlier = |author: Value| {
            json!({"id": "900", "channel_id": "555", "author": author, "content": "done",
                "timestamp": "2023-11-14T22:00:00+00:00", "edited_timestamp": null,
                "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
                "attachments": [], "embeds": [], "pinned": false, "type": 0})
        };
        let reply =
            message(json!({"type": 19, "referenced_message": earlier(user(ME, "borg", true))}));
        assert!(to_incoming(&reply, me()).unwrap().reply_to_bot);
        let other =
            message(json!({"type": 19, "referenced_message": earlier(user(43, "g", false))}));
        assert!(!to_incoming(&other, me()).unwrap().reply_to_bot);
    }

    #[test]
    fn bots_webhooks_system_and_empty_messages_are_ignored() {
        let own = message(json!({"author": user(ME, "borg", true)}));
        assert!(to_incoming(&own, me()).is_none());
        let bot = message(json!({"author": user(5, "other-bot", true)}));
        assert!(to_incoming(&bot, me()).is_none());
        let hook = message(json!({"webhook_id": "12"}));
        assert!(to_incoming(&hook, me()).is_none());
        let join = message(json!({"type": 7, "content": ""}));
        assert!(to_incoming(&join, me()).is_none());
        let image_only = message(json!({"content": "  "}));
        assert!(to_incoming(&image_only, me()).is_none());
    }
}
