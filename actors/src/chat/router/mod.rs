//! The chat router: every transport hands it what people write. It answers commands, keeps
//! the list of registered chats, starts one group actor per registered chat (as dynamic
//! children of the `groups` supervisor) and forwards messages to them.
//!
//! In a chat that is not registered only `/chatid`, `/ping`, `/help` (and `/register`, for
//! admins) answer, and nothing reaches an agent.

pub mod book;
mod commands;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::snapshot::{Persister, SnapshotStore};
use supervisors::{BreakerPolicy, ChildSpec, Introspection, StartCtx, SupervisorRef};

use crate::chat::command::Command;
use crate::chat::group::{Group, GroupArgs, GroupDeps, GroupMsg};
use crate::chat::port::{ChatId, ChatTransport, Format, IncomingMessage, Platform};
use book::RouterBook;

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
    Incoming(IncomingMessage),
    /// Retry messages that could not reach their group (restarting, parked).
    #[doc(hidden)]
    Flush,
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
    /// Messages waiting for their group to come back, oldest first.
    waiting: VecDeque<IncomingMessage>,
    flush_scheduled: bool,
}

/// How many undeliverable messages the router holds before it drops the oldest.
const MAX_WAITING: usize = 10_000;

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
        Ok(RouterState {
            args,
            persister,
            book: book.unwrap_or_default(),
            groups: HashMap::new(),
            waiting: VecDeque::new(),
            flush_scheduled: false,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<RouterMsg>,
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
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Incoming(msg) => state.incoming(&myself, msg).await?,
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
            RouterMsg::Flush => {
                state.flush_scheduled = false;
                let waiting = std::mem::take(&mut state.waiting);
                // A chat unregistered meanwhile has nobody to take its messages.
                for msg in waiting {
                    if state.book.registered.contains_key(&msg.chat) {
                        state.forward(&myself, msg).await;
                    }
                }
            }
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
    ) -> Result<(), ActorProcessingErr> {
        if self.args.settings.admin_chat.as_ref() == Some(&msg.chat)
            && self.book.admins.insert(msg.sender_id.clone())
        {
            self.save().await?;
        }
        if let Some(command) = Command::parse(&msg.text, None) {
            return self.command(msg, command).await;
        }
        if self.book.registered.contains_key(&msg.chat) {
            self.forward(myself, msg).await;
        }
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

    /// Hands a message to its group, or keeps it until the group is back.
    async fn forward(&mut self, myself: &ActorRef<RouterMsg>, msg: IncomingMessage) {
        if let Some(group) = self.groups.get(&msg.chat)
            && group.cast(GroupMsg::Incoming(msg.clone())).is_ok()
        {
            return;
        }
        // The group restarted (new actor) or is down: ask its supervisor for the current one.
        if let Ok(Some(cell)) = self.args.groups.child(&group_child_id(&msg.chat)).await {
            let group: ActorRef<GroupMsg> = cell.into();
            if group.cast(GroupMsg::Incoming(msg.clone())).is_ok() {
                self.groups.insert(msg.chat.clone(), group);
                return;
            }
        }
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            tracing::warn!("too many messages waiting for their groups; dropped the oldest");
        }
        self.waiting.push_back(msg);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            myself.send_after(Duration::from_secs(1), || RouterMsg::Flush);
        }
    }
}
