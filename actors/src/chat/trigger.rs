//! When a chat message asks for the assistant.
//!
//! A message triggers a run when it mentions `@<ASSISTANT_NAME>` (any case, as a whole word:
//! `@Borg,` yes, `@Borgia` no), when the platform marked a mention of the bot, when it replies
//! to the bot, or — in a registered private chat — always.

use super::port::IncomingMessage;

/// Whether `msg` asks the assistant named `name` for an answer.
pub fn is_trigger(msg: &IncomingMessage, name: &str) -> bool {
    msg.private || msg.mentions_bot || msg.reply_to_bot || mentions_name(&msg.text, name)
}

/// Whether `text` contains `@name` as a whole word, ignoring case.
pub fn mentions_name(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let needle: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        if c != '@' {
            return false;
        }
        // The mention starts a word: `mail@borg` is an address, not a mention.
        if i > 0 && is_word(chars[i - 1]) {
            return false;
        }
        let mut rest = chars[i + 1..].iter().flat_map(|c| c.to_lowercase());
        let matched = needle.iter().all(|n| rest.next() == Some(*n));
        let after = chars.get(i + 1 + name.chars().count());
        matched && !after.is_some_and(|c| is_word(*c))
    })
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> IncomingMessage {
        IncomingMessage {
            chat: crate::chat::ChatId("tg:1".into()),
            chat_title: "t".into(),
            private: false,
            message_id: "1".into(),
            sender_id: "tg:2".into(),
            sender_name: "Ann".into(),
            text: text.into(),
            mentions_bot: false,
            reply_to_bot: false,
            at_ms: 0,
        }
    }

    #[test]
    fn mentions_match_whole_words_in_any_case() {
        for yes in [
            "@Borg hi",
            "hi @borg",
            "hey @BORG, look",
            "(@Borg)",
            "🙂@Borg",
            "مرحبا @Borg שלום",
        ] {
            assert!(mentions_name(yes, "Borg"), "{yes}");
        }
        for no in ["Borg hi", "@Borgia", "mail@borg.net", "@Bor", "@ Borg", ""] {
            assert!(!mentions_name(no, "Borg"), "{no}");
        }
    }

    #[test]
    fn private_chats_platform_mentions_and_replies_trigger() {
        let plain = msg("just chatting");
        assert!(!is_trigger(&plain, "Borg"));
        assert!(is_trigger(
            &IncomingMessage {
                private: true,
                ..plain.clone()
            },
            "Borg"
        ));
        assert!(is_trigger(
            &IncomingMessage {
                mentions_bot: true,
                ..plain.clone()
            },
            "Borg"
        ));
        assert!(is_trigger(
            &IncomingMessage {
                reply_to_bot: true,
                ..plain
            },
            "Borg"
        ));
    }
}
