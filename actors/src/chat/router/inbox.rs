//! Messages the router holds for groups that are not running (restarting, or parked by their
//! breaker). A message is always in one durable place: the router saves it in its inbox
//! before the transport is told it is kept, and it leaves the inbox only once its group has
//! saved it. So a group that cannot take messages in for a while (its store cannot write,
//! it keeps failing) neither loses them nor holds up the other chats' intake. While a chat
//! has messages waiting here, its new ones wait behind them, so its group gets them in order.

use std::collections::HashSet;
use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef, MessagingErr};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{PersistError, Snapshot};
use tokio::time::Instant;

use super::{RouterMsg, RouterState, group_child_id};
use crate::chat::group::GroupMsg;
use crate::chat::port::{ChatId, IncomingMessage, Taken};

/// Where the inbox is persisted.
pub const INBOX_KEY: &str = "chat/router/inbox";

/// How many messages the inbox holds before it drops the oldest. The whole inbox is saved at
/// every change, so this also bounds that write (at most a few MB of chat text).
pub const MAX_WAITING: usize = 1_000;

/// How often the router tries again to hand held messages to their groups.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long a flush waits for the groups to save what it handed them.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// The router's persisted inbox (format version 1), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterInbox {
    pub messages: Vec<IncomingMessage>,
}

impl Snapshot for RouterInbox {
    const VERSION: u16 = 1;
}

/// A message's identity across deliveries: its chat and the platform's message id.
pub(super) type MessageKey = (ChatId, String);

pub(super) fn key(msg: &IncomingMessage) -> MessageKey {
    (msg.chat.clone(), msg.message_id.clone())
}

impl RouterState {
    /// Hands a message to its group; when no group takes it, keeps it durably until one does.
    pub(super) async fn forward(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        msg: IncomingMessage,
        taken: Taken,
    ) -> Result<(), ActorProcessingErr> {
        // Behind messages of its chat that are already waiting, so that its group takes them
        // in the order they were written (a mention must not reach the group before the
        // lines said before it, or its run would not see them).
        let waiting = self.inbox.messages.iter().any(|m| m.chat == msg.chat);
        let (msg, taken) = if waiting {
            (msg, taken)
        } else {
            let Some(back) = self.hand_over(msg, taken).await else {
                return Ok(());
            };
            back
        };
        let chat = msg.chat.clone();
        self.inbox.messages.push(msg);
        let dropped =
            (self.inbox.messages.len() > MAX_WAITING).then(|| self.inbox.messages.remove(0));
        if let Err(e) = self.save_inbox().await {
            // What is not saved is not held: `taken` goes unkept, so a transport that can
            // deliver again does. The router itself stays up: commands need no disk.
            self.inbox.messages.pop();
            if let Some(oldest) = dropped {
                self.inbox.messages.insert(0, oldest);
            }
            tracing::warn!(%chat, "a message for a group that is down was not saved: {e}");
            return Ok(());
        }
        if dropped.is_some() {
            tracing::warn!("too many messages waiting for their groups; dropped the oldest");
        }
        taken.kept();
        self.schedule_flush(myself);
        Ok(())
    }

    /// Casts the message to its group's current actor. Gives it back when no group took it.
    async fn hand_over(
        &mut self,
        msg: IncomingMessage,
        taken: Taken,
    ) -> Option<(IncomingMessage, Taken)> {
        let chat = msg.chat.clone();
        let mut message = GroupMsg::Incoming(msg, taken);
        if let Some(group) = self.groups.get(&chat) {
            message = give_back(group.cast(message))?;
        }
        // The group restarted (new actor) or is down: ask its supervisor for the current one.
        if let Ok(Some(cell)) = self.args.groups.child(&group_child_id(&chat)).await {
            let group: ActorRef<GroupMsg> = cell.into();
            match give_back(group.cast(message)) {
                None => {
                    self.groups.insert(chat, group);
                    return None;
                }
                Some(back) => message = back,
            }
        }
        match message {
            GroupMsg::Incoming(msg, taken) => Some((msg, taken)),
            _ => None,
        }
    }

    async fn save_inbox(&mut self) -> Result<(), PersistError> {
        self.inbox_persister.save(&self.inbox).await
    }

    /// Saves the inbox after it shrank. A failure is only logged: the next save writes the
    /// whole inbox anyway, and until then the worst is a message handed over twice, which
    /// its group recognises.
    async fn save_shrunk_inbox(&mut self) {
        if let Err(e) = self.save_inbox().await {
            tracing::warn!("the router's inbox could not be saved: {e}");
        }
    }

    /// Asks for a [`RouterMsg::Flush`] unless one is already coming or in progress.
    pub(super) fn schedule_flush(&mut self, myself: &ActorRef<RouterMsg>) {
        if !self.flush_scheduled && !self.inbox.messages.is_empty() {
            self.flush_scheduled = true;
            myself.send_after(FLUSH_EVERY, || RouterMsg::Flush);
        }
    }

    /// Hands every held message to its group again, and settles later what the groups saved.
    pub(super) async fn flush(&mut self, myself: &ActorRef<RouterMsg>) {
        // A chat unregistered meanwhile has nobody to take its messages.
        let before = self.inbox.messages.len();
        let registered = &self.book.registered;
        self.inbox
            .messages
            .retain(|m| registered.contains_key(&m.chat));
        if self.inbox.messages.len() != before {
            self.save_shrunk_inbox().await;
        }
        let mut receipts = Vec::new();
        let mut down = HashSet::new();
        for msg in self.inbox.messages.clone() {
            if down.contains(&msg.chat) {
                continue;
            }
            let (taken, receipt) = Taken::pair();
            let key = key(&msg);
            match self.hand_over(msg, taken).await {
                None => receipts.push((key, receipt)),
                Some(_) => {
                    down.insert(key.0);
                }
            }
        }
        if receipts.is_empty() {
            self.flush_scheduled = false;
            self.schedule_flush(myself);
            return;
        }
        // Waited for off the mailbox: the groups answer at their own pace.
        let me = myself.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + SETTLE_WAIT;
            let mut kept = Vec::new();
            for (key, receipt) in receipts {
                if receipt.kept_by(deadline).await {
                    kept.push(key);
                }
            }
            // The router may have stopped meanwhile; its successor flushes again.
            let _ = me.cast(RouterMsg::Settled(kept));
        });
    }

    /// Forgets the held messages their groups have saved; flushes again if any are left.
    pub(super) async fn settled(&mut self, myself: &ActorRef<RouterMsg>, kept: Vec<MessageKey>) {
        let kept: HashSet<MessageKey> = kept.into_iter().collect();
        let before = self.inbox.messages.len();
        self.inbox.messages.retain(|m| !kept.contains(&key(m)));
        if self.inbox.messages.len() != before {
            self.save_shrunk_inbox().await;
        }
        self.flush_scheduled = false;
        self.schedule_flush(myself);
    }
}

/// The message a failed cast returns, or `None` when the cast went through (or when ractor
/// kept the message, which then drops its `Taken` unkept and so is delivered again).
fn give_back(sent: Result<(), MessagingErr<GroupMsg>>) -> Option<GroupMsg> {
    match sent {
        Err(MessagingErr::SendErr(message)) => Some(message),
        Ok(()) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisors::snapshot;

    #[test]
    fn inbox_snapshot_v1_golden_bytes() {
        // Frozen: changing this means a new version and an upgrade path.
        let inbox = RouterInbox {
            messages: vec![IncomingMessage {
                chat: ChatId("tg:1".into()),
                chat_title: "t".into(),
                private: false,
                message_id: "2".into(),
                sender_id: "tg:3".into(),
                sender_name: "A".into(),
                text: "hi".into(),
                mentions_bot: true,
                reply_to_bot: false,
                at_ms: 5,
            }],
        };
        let bytes = snapshot::encode(&inbox);
        assert_eq!(
            bytes,
            [
                b'B', b'S', b'N', b'P', 1, 0, 1, 4, b't', b'g', b':', b'1', 1, b't', 0, 1, b'2', 4,
                b't', b'g', b':', b'3', 1, b'A', 2, b'h', b'i', 1, 0, 5
            ]
        );
        let back: RouterInbox = snapshot::decode(&bytes).unwrap();
        assert_eq!(back, inbox);
    }
}
