//! The bridge protocol: what borg and the WhatsApp bridge process say to each other, one JSON
//! object per line, tagged by `type`. These types are the protocol's only definition;
//! `bridge.mjs` and the test fake follow them, and the contract test runs the real script
//! against them.
//!
//! The bridge speaks first: `hello{version}` names the protocol version it speaks, and borg
//! refuses a bridge whose version is not [`PROTOCOL_VERSION`]. Fields a side does not know
//! are ignored, so either side may add optional fields without a new version; a new variant
//! or a changed meaning needs one.
//!
//! JSON text never contains a raw newline (both serde_json and `JSON.stringify` escape it),
//! so a newline always ends a message.

use serde::{Deserialize, Serialize};

/// The protocol version this borg speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line borg reads from a bridge. The longest WhatsApp text (65,536 chars, 4 bytes
/// each at worst) fits four times over; anything longer is not a protocol line.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What the bridge tells borg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// The first line: the protocol version the bridge speaks.
    Hello { version: u32 },
    /// A pairing code to show as a QR code; WhatsApp renews it every 20 s or so until it is
    /// scanned.
    Qr {
        code: String,
        /// The code already drawn for a terminal (`qrcode-terminal`), if the bridge could.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terminal: Option<String>,
    },
    /// Connected and logged in as `me` (a phone-number jid, `4915…@s.whatsapp.net`).
    Ready {
        me: String,
        /// The account's anonymous id (`…@lid`), which groups may use in mentions instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lid: Option<String>,
        /// The account's display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A text message someone sent.
    Message(WaMessage),
    /// The `send` or `edit` with this request id was accepted by WhatsApp as message `id`.
    Sent { req: u64, id: String },
    /// Something failed: the request `req` if it names one, else the bridge in general.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        message: String,
        /// What kind of failure, so borg can decide between retrying and giving up.
        #[serde(default)]
        class: ErrorClass,
    },
    /// The WhatsApp connection closed; the bridge exits after this line. `logged_out`: the
    /// phone unlinked this device, and the saved session is useless.
    Closed { reason: String, logged_out: bool },
}

/// A WhatsApp text message, as the bridge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaMessage {
    /// The chat's jid: `…@g.us` for a group, the person's jid for a one-to-one chat.
    pub chat: String,
    /// WhatsApp's message id.
    pub id: String,
    /// The sender's jid.
    pub sender: String,
    /// The sender's display name (WhatsApp's push name); may be empty.
    #[serde(default)]
    pub sender_name: String,
    pub text: String,
    /// Jids the message mentions (`@` in the WhatsApp app).
    #[serde(default)]
    pub mentions: Vec<String>,
    /// It quotes (replies to) a message this account sent.
    #[serde(default)]
    pub reply_to_me: bool,
    pub is_group: bool,
    /// When it was sent, ms since the Unix epoch.
    pub ts: u64,
    /// The group's subject, when the bridge knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_name: Option<String>,
}

/// Why a request failed, as the bridge classifies WhatsApp's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The chat is gone, or this account may not write there (not a member any more).
    ChatUnavailable,
    /// WhatsApp asked to slow down.
    RateLimited,
    /// Anything else: worth retrying later.
    #[default]
    Unavailable,
}

/// What borg tells the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeCommand {
    /// Send `text` to `chat` (a jid), quoting message `reply_to` when the bridge still has
    /// it. Answered by `sent` or `error` with the same `req`.
    Send {
        req: u64,
        chat: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Replace the text of message `id`, which this account sent. Answered like `send`.
    Edit {
        req: u64,
        chat: String,
        id: String,
        text: String,
    },
    /// Show "typing…" in `chat` for a few seconds. Not answered.
    Typing { chat: String },
    /// Save the session and exit.
    Shutdown,
}

/// A line that is not a protocol event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one line from the bridge (without its newline).
pub fn parse_event(line: &str) -> Result<BridgeEvent, Malformed> {
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| Malformed(format!("not JSON ({e}): {}", excerpt(line))))?;
    if !value.is_object() {
        return Err(Malformed(format!("not a JSON object: {}", excerpt(line))));
    }
    let event: BridgeEvent = serde_json::from_value(value)
        .map_err(|e| Malformed(format!("not a bridge event ({e}): {}", excerpt(line))))?;
    if let BridgeEvent::Message(m) = &event
        && (m.chat.is_empty() || m.id.is_empty() || m.sender.is_empty())
    {
        return Err(Malformed(format!(
            "a message without chat, id or sender: {}",
            excerpt(line)
        )));
    }
    Ok(event)
}

/// One command as a protocol line, newline included.
pub fn encode_command(command: &BridgeCommand) -> String {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no floats.
    let mut line = serde_json::to_string(command).unwrap_or_default();
    line.push('\n');
    line
}

/// The start of a line for a log message: enough to recognise it, never a flood.
fn excerpt(line: &str) -> String {
    const MAX: usize = 120;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &line[..cut], line.len()),
        None => format!("{line:?}"),
    }
}

/// The user part of a jid, without the device: `4915:3@s.whatsapp.net` → `4915`, and the
/// server with the old `c.us` spelling of `s.whatsapp.net` unified.
pub fn jid_user(jid: &str) -> (&str, &str) {
    let (user, server) = jid.split_once('@').unwrap_or((jid, ""));
    let user = user.split_once(':').map_or(user, |(user, _device)| user);
    let server = if server == "c.us" {
        "s.whatsapp.net"
    } else {
        server
    };
    (user, server)
}

/// Whether two jids name the same account, whatever device each names.
pub fn same_user(a: &str, b: &str) -> bool {
    let (a, b) = (jid_user(a), jid_user(b));
    !a.0.is_empty() && a == b
}

/// A jid without its device part: `4915:3@s.whatsapp.net` → `4915@s.whatsapp.net`.
pub fn normalized_jid(jid: &str) -> String {
    match jid_user(jid) {
        (user, "") => user.to_owned(),
        (user, server) => format!("{user}@{server}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frozen lines of protocol version 1: a change that breaks one of these needs a new
    /// version (and the bridge script to follow).
    const GOLDEN_EVENTS: &[&str] = &[
        r#"{"type":"hello","version":1}"#,
        r#"{"type":"qr","code":"2@abc,def"}"#,
        r#"{"type":"ready","me":"4915@s.whatsapp.net","lid":"77@lid","name":"Bot"}"#,
        r#"{"type":"message","chat":"1203@g.us","id":"3EB0","sender":"4916@s.whatsapp.net","sender_name":"Ada","text":"hi @4915","mentions":["4915@s.whatsapp.net"],"reply_to_me":false,"is_group":true,"ts":1700000000000,"chat_name":"Team"}"#,
        r#"{"type":"sent","req":7,"id":"3EB1"}"#,
        r#"{"type":"error","req":7,"message":"forbidden","class":"chat_unavailable"}"#,
        r#"{"type":"closed","reason":"logged out (401)","logged_out":true}"#,
    ];

    #[test]
    fn golden_events_parse_and_round_trip() {
        for line in GOLDEN_EVENTS {
            let event = parse_event(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let back = serde_json::to_string(&event).unwrap();
            assert_eq!(parse_event(&back).unwrap(), event, "{line}");
        }
        let Ok(BridgeEvent::Message(m)) = parse_event(GOLDEN_EVENTS[3]) else {
            panic!("a message")
        };
        assert_eq!(m.mentions, ["4915@s.whatsapp.net"]);
        assert_eq!(
            (m.ts, m.chat_name.as_deref()),
            (1_700_000_000_000, Some("Team"))
        );
    }

    #[test]
    fn golden_commands() {
        let send = BridgeCommand::Send {
            req: 1,
            chat: "1203@g.us".into(),
            text: "two\nlines".into(),
            reply_to: Some("3EB0".into()),
        };
        assert_eq!(
            encode_command(&send),
            "{\"type\":\"send\",\"req\":1,\"chat\":\"1203@g.us\",\"text\":\"two\\nlines\",\"reply_to\":\"3EB0\"}\n"
        );
        let plain = BridgeCommand::Send {
            req: 2,
            chat: "c".into(),
            text: "t".into(),
            reply_to: None,
        };
        assert!(!encode_command(&plain).contains("reply_to"));
        assert_eq!(
            encode_command(&BridgeCommand::Typing { chat: "c".into() }),
            "{\"type\":\"typing\",\"chat\":\"c\"}\n"
        );
        assert_eq!(
            encode_command(&BridgeCommand::Shutdown),
            "{\"type\":\"shutdown\"}\n"
        );
        let edit = encode_command(&BridgeCommand::Edit {
            req: 3,
            chat: "c".into(),
            id: "M".into(),
            text: "new".into(),
        });
        assert_eq!(
            edit,
            "{\"type\":\"edit\",\"req\":3,\"chat\":\"c\",\"id\":\"M\",\"text\":\"new\"}\n"
        );
    }

    #[test]
    fn optional_fields_default_and_unknown_fields_are_ignored() {
        let line = r#"{"type":"message","chat":"4916@s.whatsapp.net","id":"X","sender":"4916@s.whatsapp.net","text":"hi","is_group":false,"ts":1,"future":"field"}"#;
        let Ok(BridgeEvent::Message(m)) = parse_event(line) else {
            panic!("a message")
        };
        assert!(m.mentions.is_empty() && !m.reply_to_me && m.sender_name.is_empty());
        let error = parse_event(r#"{"type":"error","message":"boom"}"#).unwrap();
        assert_eq!(
            error,
            BridgeEvent::Error {
                req: None,
                message: "boom".into(),
                class: ErrorClass::Unavailable
            }
        );
    }

    #[test]
    fn malformed_lines_name_the_reason() {
        let cases = [
            ("not json at all", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"type":"bogus"}"#, "unknown variant"),
            (r#"{"version":1}"#, "missing field `type`"),
            (r#"{"type":"message","chat":"x"}"#, "missing field"),
            (r#"{"type":"sent","req":"seven","id":"x"}"#, "invalid type"),
            (
                r#"{"type":"message","chat":"","id":"X","sender":"s","text":"t","is_group":false,"ts":1}"#,
                "without chat",
            ),
        ];
        for (line, reason) in cases {
            let err = parse_event(line).expect_err(line);
            assert!(err.0.contains(reason), "{line}: {err}");
        }
        let long = format!("{}{}", "x".repeat(500), "END");
        let err = parse_event(&long).unwrap_err();
        assert!(
            !err.0.contains("END") && err.0.contains("503 bytes"),
            "{err}"
        );
    }

    #[test]
    fn jids_compare_by_user_whatever_the_device() {
        assert!(same_user("4915:3@s.whatsapp.net", "4915@s.whatsapp.net"));
        assert!(same_user("4915@c.us", "4915:12@s.whatsapp.net"));
        assert!(same_user("77:4@lid", "77@lid"));
        assert!(!same_user("4915@s.whatsapp.net", "4915@lid"));
        assert!(!same_user("4915@s.whatsapp.net", "4916@s.whatsapp.net"));
        assert!(!same_user("", ""));
        assert_eq!(
            normalized_jid("4915:3@s.whatsapp.net"),
            "4915@s.whatsapp.net"
        );
        assert_eq!(normalized_jid("1203@g.us"), "1203@g.us");
    }
}
