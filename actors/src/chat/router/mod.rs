//! The chat router: every transport hands it what people write. It answers commands, keeps
//! the list of registered chats, starts one group actor per registered chat (as dynamic
//! children of the `groups` supervisor) and forwards messages to them.
//!
//! In a chat that is not registered only `/chatid`, `/ping`, `/help` (and `/register`, for
//! admins) answer, and nothing reaches an agent.
//!
//! Every message comes with a [`Taken`] for its transport: kept once a group has saved the
//! message, or the router's [`inbox`] has (its group being down), or once a command is
//! answered. A transport that can deliver again (Telegram) does so for messages not kept, so
//! the router remembers the commands it answered lately and does not answer them twice.

pub mod book;
mod commands;
pub mod inbox;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::snapshot::{Persister, SnapshotStore};
use supervisors::{BreakerPolicy, ChildSpec, Introspection, StartCtx, SupervisorRef};

use crate::chat::command::Command;
use crate::chat::group::{Group, GroupArgs, GroupDeps, GroupMsg};
use crate::chat::port::{ChatId, ChatTransport, Format, IncomingMessage, Platform, Taken};
use book::RouterBook;
use inbox::{INBOX_KEY, MessageKey, RouterInbox};

/// Fixed facts the router reports and decides by.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub version: String,
    pub started: Instant,
    pub admin_chat: Option<ChatId>,
    /// User ids allowed to run admin commands (`tg:42`, or the bare platform id).
    pub admin_users: Vec<String>,
    /// What `/pipeline` prints.
    pub pipeline_summary: String,
    /// How agents are isolated, as `/status` shows it (a warning when they are not).
    pub sandbox: String,
}

/// What the router works with.
pub struct RouterArgs {
    pub settings: RouterSettings,
    pub transports: HashMap<Platform, Arc<dyn ChatTransport>>,
    /// Template for every group; its transport is replaced by the chat's platform's.
    pub group_deps: GroupDeps,
    /// The supervisor the group actors run under.
    pub groups: SupervisorRef,
    pub store: Arc<dyn SnapshotStore>,
    pub introspection: Introspection,
}

pub enum RouterMsg {
    /// A message from a transport; `Taken` is kept once the message is safe.
    Incoming(IncomingMessage, Taken),
    /// Hand the inbox's messages to their groups again (restarting, parked).
    #[doc(hidden)]
    Flush,
    /// A flush's hand-overs that their groups saved.
    #[doc(hidden)]
    Settled(Vec<MessageKey>),
    /// Sends `text` to a chat on its platform, best effort (pipeline reports).
    Announce(ChatId, String),
}

pub struct Router;

pub struct RouterState {
    args: RouterArgs,
    persister: Persister<RouterBook>,
    book: RouterBook,
    /// The running group actors we know of; refreshed from the supervisor on a failed send.
    groups: HashMap<ChatId, ActorRef<GroupMsg>>,
    inbox_persister: Persister<RouterInbox>,
    /// Messages waiting for their group to come back.
    inbox: RouterInbox,
    /// A flush is coming or in progress.
    flush_scheduled: bool,
    /// Commands answered lately, so one delivered again is not answered again.
    answered: VecDeque<MessageKey>,
}

/// How many answered commands the router remembers (a few Telegram batches' worth).
const ANSWERED_MEMORY: usize = 512;

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        let (persister, book) = Persister::restore(args.store.clone(), "chat/router", None).await?;
        let (inbox_persister, inbox) =
            Persister::restore(args.store.clone(), INBOX_KEY, None).await?;
        Ok(RouterState {
            args,
            persister,
            book: book.unwrap_or_default(),
            groups: HashMap::new(),
            inbox_persister,
            inbox: inbox.unwrap_or_default(),
            flush_scheduled: false,
            answered: VecDeque::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<RouterMsg>,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        let chats: Vec<(ChatId, String)> = state
            .book
            .registered
            .iter()
            .map(|(c, t)| (c.clone(), t.clone()))
            .collect();
        for (chat, title) in chats {
            state.start_group(&chat, &title).await;
        }
        state.schedule_flush(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Incoming(msg, taken) => state.incoming(&myself, msg, taken).await?,
            RouterMsg::Announce(chat, text) => match state.transport(&chat) {
                Some(transport) => {
                    // Off the mailbox: a slow platform must not hold up chat.
                    tokio::spawn(async move {
                        if let Err(e) = transport.send(&chat, &text, Format::Plain, None).await {
                            tracing::warn!(%chat, "pipeline report not delivered: {e}");
                        }
                    });
                }
                None => tracing::info!(%chat, "no transport for this chat; report dropped: {text}"),
            },
            RouterMsg::Flush => state.flush(&myself).await,
            RouterMsg::Settled(kept) => state.settled(&myself, kept).await,
        }
        Ok(())
    }
}

/// The id of a chat's group among the `groups` supervisor's children.
pub fn group_child_id(chat: &ChatId) -> String {
    format!("group:{chat}")
}

impl RouterState {
    async fn save(&mut self) -> Result<(), ActorProcessingErr> {
        Ok(self.persister.save(&self.book).await?)
    }

    fn transport(&self, chat: &ChatId) -> Option<Arc<dyn ChatTransport>> {
        self.args.transports.get(&chat.platform()?).cloned()
    }

    async fn reply(&self, msg: &IncomingMessage, text: &str) {
        if let Some(transport) = self.transport(&msg.chat) {
            let sent = transport
                .send(&msg.chat, text, Format::Plain, Some(&msg.message_id))
                .await;
            if let Err(e) = sent {
                tracing::warn!(chat = %msg.chat, "command answer not delivered: {e}");
            }
        }
    }

    fn is_admin(&self, msg: &IncomingMessage) -> bool {
        let bare = msg.sender_id.split_once(':').map_or("", |(_, id)| id);
        self.args.settings.admin_chat.as_ref() == Some(&msg.chat)
            || self.book.admins.contains(&msg.sender_id)
            || self
                .args
                .settings
                .admin_users
                .iter()
                .any(|a| *a == msg.sender_id || (!bare.is_empty() && a == bare))
    }

    async fn incoming(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        msg: IncomingMessage,
        taken: Taken,
    ) -> Result<(), ActorProcessingErr> {
        if self.args.settings.admin_chat.as_ref() == Some(&msg.chat)
            && self.book.admins.insert(msg.sender_id.clone())
            && let Err(e) = self.save().await
        {
            // Learnt again from their next message in the admin chat.
            self.book.admins.remove(&msg.sender_id);
            tracing::warn!(sender = %msg.sender_id, "a new admin was not saved: {e}");
        }
        if let Some(command) = Command::parse(&msg.text, None) {
            let key = inbox::key(&msg);
            if !self.answered.contains(&key) {
                self.command(msg, command).await?;
                if self.answered.len() >= ANSWERED_MEMORY {
                    self.answered.pop_front();
                }
                self.answered.push_back(key);
            }
            taken.kept();
            return Ok(());
        }
        if self.book.registered.contains_key(&msg.chat) {
            return self.forward(myself, msg, taken).await;
        }
        // Nobody keeps what is said in a chat that is not registered.
        taken.kept();
        Ok(())
    }

    /// Starts the group actor of `chat` under the groups supervisor.
    async fn start_group(&mut self, chat: &ChatId, title: &str) {
        let Some(transport) = self.transport(chat) else {
            tracing::warn!(%chat, "no transport for this chat's platform; its group waits");
            return;
        };
        let mut deps = self.args.group_deps.clone();
        deps.transport = transport;
        let (chat_id, title) = (chat.clone(), title.to_owned());
        let spec = ChildSpec::new(group_child_id(chat), move |ctx: StartCtx| {
            let args = GroupArgs {
                chat: chat_id.clone(),
                title: title.clone(),
                deps: deps.clone(),
                stats: Some(ctx.stats.clone()),
            };
            async move { ctx.spawn(Group, args).await.map(Some) }
        })
        .kind("group")
        .breaker(BreakerPolicy::default());
        match self.args.groups.start_child(spec).await {
            Ok(Some(cell)) => {
                self.groups.insert(chat.clone(), cell.into());
            }
            Ok(None) => {}
            Err(e) => tracing::error!(%chat, "group did not start: {e}"),
        }
    }
}
