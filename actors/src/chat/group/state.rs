//! What a group actor persists, and the prompt it builds from it.
//!
//! The snapshot is what makes chat runs durable: a run is recorded (`inflight`) before the
//! agent starts, and its reply (`undelivered`) before it is sent. After a crash the actor
//! delivers an undelivered reply, or runs an inflight record again, exactly once.

use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Snapshot, SnapshotError, decode_payload};

use crate::chat::port::{ChatId, IncomingMessage};

/// Lines kept for the next run; older ones that did not trigger are dropped first, so a flood
/// cannot grow memory or the prompt without bound.
pub const MAX_PENDING_LINES: usize = 200;
/// Characters kept of one message: a 100 KB paste becomes its head and a marker.
pub const MAX_LINE_CHARS: usize = 8_000;

/// One chat message as the group remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub message_id: String,
    pub sender: String,
    pub text: String,
    pub at_ms: u64,
    /// It asked for the assistant (a mention, a reply, a private message).
    pub trigger: bool,
}

impl ChatLine {
    pub fn from_message(msg: &IncomingMessage, trigger: bool) -> Self {
        let mut text: String = msg.text.chars().take(MAX_LINE_CHARS).collect();
        if text.len() < msg.text.len() {
            text.push_str(" […message cut]");
        }
        ChatLine {
            message_id: msg.message_id.clone(),
            sender: msg.sender_name.clone(),
            text,
            at_ms: msg.at_ms,
            trigger,
        }
    }
}

/// A run recorded before its agent starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: u64,
    pub lines: Vec<ChatLine>,
}

impl RunRecord {
    /// The message the answer replies to: the last one that asked for it.
    pub fn reply_to(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.trigger)
            .map(|l| l.message_id.as_str())
    }
}

/// An answer recorded before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub run: u64,
    pub text: String,
    pub reply_to: Option<String>,
    /// Parts of a long answer already delivered: a retry resumes after them instead of
    /// sending the whole answer again.
    pub parts_sent: u32,
}

/// The persisted state of one group (format version 2: `Reply::parts_sent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub chat: ChatId,
    pub title: String,
    /// The Claude session to resume.
    pub session_id: Option<String>,
    /// Messages since the last run started, for the next run.
    pub pending: Vec<ChatLine>,
    pub inflight: Option<RunRecord>,
    pub undelivered: Option<Reply>,
    pub next_run: u64,
    /// Start times of recent runs (ms), for `RATE_LIMIT_PER_MINUTE`.
    pub recent_runs_ms: Vec<u64>,
    /// Message ids already taken in, newest last: transports may deliver twice after a restart.
    pub seen: Vec<String>,
}

impl Snapshot for GroupSnapshot {
    const VERSION: u16 = 2;

    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
        match version {
            1 => Ok(decode_payload::<v1::GroupSnapshot>(payload)?.into()),
            v => Err(SnapshotError::UnknownVersion(v)),
        }
    }
}

/// Format version 1, frozen: how groups were stored before replies counted their parts.
mod v1 {
    use serde::{Deserialize, Serialize};

    use super::{ChatId, ChatLine, RunRecord};

    #[derive(Serialize, Deserialize)]
    pub struct Reply {
        pub run: u64,
        pub text: String,
        pub reply_to: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct GroupSnapshot {
        pub chat: ChatId,
        pub title: String,
        pub session_id: Option<String>,
        pub pending: Vec<ChatLine>,
        pub inflight: Option<RunRecord>,
        pub undelivered: Option<Reply>,
        pub next_run: u64,
        pub recent_runs_ms: Vec<u64>,
        pub seen: Vec<String>,
    }

    impl From<GroupSnapshot> for super::GroupSnapshot {
        fn from(old: GroupSnapshot) -> Self {
            super::GroupSnapshot {
                chat: old.chat,
                title: old.title,
                session_id: old.session_id,
                pending: old.pending,
                inflight: old.inflight,
                undelivered: old.undelivered.map(|r| super::Reply {
                    run: r.run,
                    text: r.text,
                    reply_to: r.reply_to,
                    parts_sent: 0,
                }),
                next_run: old.next_run,
                recent_runs_ms: old.recent_runs_ms,
                seen: old.seen,
            }
        }
    }
}

/// How many message ids are remembered for de-duplication.
const SEEN: usize = 256;

impl GroupSnapshot {
    pub fn new(chat: ChatId, title: String) -> Self {
        GroupSnapshot {
            chat,
            title,
            session_id: None,
            pending: Vec::new(),
            inflight: None,
            undelivered: None,
            next_run: 1,
            recent_runs_ms: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Takes in a message; false if it was seen before.
    pub fn push(&mut self, line: ChatLine) -> bool {
        if self.seen.contains(&line.message_id) {
            return false;
        }
        self.seen.push(line.message_id.clone());
        if self.seen.len() > SEEN {
            self.seen.remove(0);
        }
        self.pending.push(line);
        while self.pending.len() > MAX_PENDING_LINES {
            // Drop the oldest chatter first; triggers only when nothing else is left.
            let victim = self.pending.iter().position(|l| !l.trigger).unwrap_or(0);
            self.pending.remove(victim);
        }
        true
    }

    pub fn has_trigger(&self) -> bool {
        self.pending.iter().any(|l| l.trigger)
    }

    /// Runs started within `window_ms` before `now_ms`.
    pub fn runs_within(&mut self, now_ms: u64, window_ms: u64) -> usize {
        self.recent_runs_ms
            .retain(|&t| now_ms.saturating_sub(t) < window_ms);
        self.recent_runs_ms.len()
    }

    /// Moves the pending lines into a new run record.
    pub fn record_run(&mut self, now_ms: u64) -> RunRecord {
        let record = RunRecord {
            run: self.next_run,
            lines: std::mem::take(&mut self.pending),
        };
        self.next_run += 1;
        self.recent_runs_ms.push(now_ms);
        self.inflight = Some(record.clone());
        record
    }
}

/// The prompt for a run: the recent messages with their senders, then the instruction.
pub fn prompt(assistant: &str, title: &str, lines: &[ChatLine]) -> String {
    let mut out = format!(
        "You are @{assistant}, an assistant in the chat \"{title}\".\n\n## Recent messages\n"
    );
    for line in lines {
        let secs = line.at_ms / 1000;
        out.push_str(&format!(
            "[{:02}:{:02}] {}: {}\n",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            line.sender,
            line.text
        ));
    }
    out.push_str(&format!(
        "\nRespond to the latest message addressed to you (@{assistant}). Be concise."
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: usize, trigger: bool) -> ChatLine {
        ChatLine {
            message_id: id.to_string(),
            sender: "Ann".into(),
            text: format!("m{id}"),
            at_ms: 0,
            trigger,
        }
    }

    #[test]
    fn a_flood_keeps_memory_bounded_and_keeps_triggers() {
        let mut g = GroupSnapshot::new(ChatId("tg:1".into()), "t".into());
        assert!(g.push(line(0, true)));
        for i in 1..1000 {
            g.push(line(i, false));
        }
        assert_eq!(g.pending.len(), MAX_PENDING_LINES);
        assert!(g.pending[0].trigger, "the trigger survived the flood");
        assert_eq!(g.pending.last().unwrap().message_id, "999");
        assert!(g.seen.len() <= SEEN);
    }

    #[test]
    fn duplicates_are_taken_in_once() {
        let mut g = GroupSnapshot::new(ChatId("tg:1".into()), "t".into());
        assert!(g.push(line(7, true)));
        assert!(!g.push(line(7, true)));
        assert_eq!(g.pending.len(), 1);
    }

    #[test]
    fn a_huge_message_is_cut_on_a_char_boundary() {
        let msg = IncomingMessage {
            chat: ChatId("tg:1".into()),
            chat_title: "t".into(),
            private: false,
            message_id: "1".into(),
            sender_id: "tg:2".into(),
            sender_name: "Ann".into(),
            text: "é".repeat(100_000),
            mentions_bot: false,
            reply_to_bot: false,
            at_ms: 0,
        };
        let l = ChatLine::from_message(&msg, true);
        assert!(l.text.starts_with("éé") && l.text.ends_with("[…message cut]"));
        assert!(l.text.chars().count() < MAX_LINE_CHARS + 20);
    }

    /// Bytes written by format version 1. Never edit: real groups were stored like this.
    const GOLDEN_V1: &[u8] = &[
        66, 83, 78, 80, 1, 0, 5, 116, 103, 58, 45, 53, 3, 100, 101, 118, 1, 2, 115, 49, 0, 0, 1, 1,
        5, 104, 101, 108, 108, 111, 1, 1, 55, 2, 1, 208, 15, 1, 1, 55,
    ];

    #[test]
    fn version_1_snapshots_still_load() {
        let g: GroupSnapshot = supervisors::snapshot::decode(GOLDEN_V1).unwrap();
        assert_eq!(g.chat, ChatId("tg:-5".into()));
        assert_eq!(g.session_id.as_deref(), Some("s1"));
        assert_eq!(
            g.undelivered,
            Some(Reply {
                run: 1,
                text: "hello".into(),
                reply_to: Some("7".into()),
                parts_sent: 0
            })
        );
        assert_eq!(
            (g.next_run, g.recent_runs_ms.as_slice(), g.seen.as_slice()),
            (2, &[2000][..], &["7".to_string()][..])
        );
    }

    #[test]
    fn prompt_lists_senders_then_the_instruction() {
        let p = prompt("Borg", "dev", &[line(1, false), line(2, true)]);
        assert!(p.contains("[00:00] Ann: m1\n[00:00] Ann: m2\n"));
        assert!(p.ends_with("(@Borg). Be concise."));
    }
}
