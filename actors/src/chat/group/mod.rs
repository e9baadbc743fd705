//! The group actor: one per registered chat, following the original borg's lifecycle
//!
//! ```text
//! IDLE --trigger--> COLLECTING --window--> WAITING (for an agent slot) --> RUNNING --reply--> COOLDOWN --> IDLE
//! ```
//!
//! - A trigger starts a collection window (`COLLECTION_WINDOW_MS`); each new message extends it
//!   by half a window, never past twice the window, so a burst becomes one run.
//! - Messages that arrive while WAITING, RUNNING or COOLDOWN are kept for the next run.
//! - At most `RATE_LIMIT_PER_MINUTE` runs start per minute; a trigger beyond that waits.
//! - Every change is snapshotted before it has effects: a message before it counts, a run
//!   before its agent starts, a reply before it is sent (see [`state`]).

mod delivery;
pub mod run;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use supervisors::ActorStats;
use supervisors::snapshot::{PersistError, Persister, SnapshotStore, StoreError, now_ms};

use crate::abort::AbortOnDrop;
use crate::agent::{AgentOutcome, AgentRequest, AgentRunner};
use crate::chat::port::{ChatId, ChatTransport, Format, IncomingMessage, Taken};
use crate::chat::split::split_message;
use crate::chat::trigger::is_trigger;
use crate::slots::{SlotGuard, SlotsMsg};
use state::{ChatLine, GroupSnapshot, Reply, RunRecord, prompt};

/// Settings shared by every group.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub assistant_name: String,
    pub model: String,
    pub collection_window: Duration,
    pub cooldown: Duration,
    pub rate_limit_per_minute: u32,
    /// The window the rate limit counts over: a minute, shorter only in tests.
    pub rate_window: Duration,
    pub idle_timeout: Duration,
    pub hard_timeout: Duration,
    /// Each group gets `<sessions_dir>/<chat>/{home,work}`: resume needs both to stay put.
    pub sessions_dir: PathBuf,
    pub system_prompt: Option<String>,
}

/// What a group actor talks to.
#[derive(Clone)]
pub struct GroupDeps {
    pub settings: Arc<ChatSettings>,
    pub transport: Arc<dyn ChatTransport>,
    pub runner: Arc<dyn AgentRunner>,
    pub slots: ActorRef<SlotsMsg>,
    pub store: Arc<dyn SnapshotStore>,
}

/// Arguments of one group actor.
pub struct GroupArgs {
    pub chat: ChatId,
    pub title: String,
    pub deps: GroupDeps,
    pub stats: Option<Arc<ActorStats>>,
}

/// The group's messages.
pub enum GroupMsg {
    /// A message for this chat; its [`Taken`] is kept once the message is saved.
    Incoming(IncomingMessage, Taken),
    #[doc(hidden)]
    WindowElapsed(u64),
    #[doc(hidden)]
    SlotGranted(u64, SlotGuard),
    #[doc(hidden)]
    RunFinished {
        run: u64,
        outcome: AgentOutcome,
    },
    #[doc(hidden)]
    CooldownElapsed(u64),
    #[doc(hidden)]
    RetryDelivery(u64),
    Status(RpcReplyPort<GroupStatus>),
    /// May the group be removed now? Refused while a run is in flight.
    PrepareRetire(RpcReplyPort<Result<(), String>>),
}

/// Where the group is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Collecting,
    Waiting,
    Running,
    Cooldown,
}

/// What `/status` and `/groups` show of a group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub chat: ChatId,
    pub title: String,
    pub phase: Phase,
    pub pending: usize,
    pub has_session: bool,
}

pub struct Group;

pub struct GroupState {
    deps: GroupDeps,
    persister: Persister<GroupSnapshot>,
    snap: GroupSnapshot,
    phase: Phase,
    /// Invalidates timers and slot requests of earlier phases.
    generation: u64,
    window_started: Instant,
    deadline: Instant,
    /// Aborted when dropped: ractor skips `post_stop` when a handler fails, but it always
    /// drops the state, so a failed group cannot leave its agent running beside its successor.
    run_task: Option<AbortOnDrop>,
    /// Failed attempts to send the current reply since the last part that went out; sets
    /// the backoff. Not snapshotted: a restart starts the backoff afresh.
    delivery_failures: u32,
}

/// The store key of a group.
pub fn store_key(chat: &ChatId) -> String {
    format!("chat/group/{chat}")
}

impl Actor for Group {
    type Msg = GroupMsg;
    type State = GroupState;
    type Arguments = GroupArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<GroupMsg>,
        args: GroupArgs,
    ) -> Result<GroupState, ActorProcessingErr> {
        let (persister, restored) =
            Persister::restore(args.deps.store.clone(), store_key(&args.chat), args.stats).await?;
        let snap = restored.unwrap_or_else(|| GroupSnapshot::new(args.chat, args.title));
        let now = Instant::now();
        Ok(GroupState {
            deps: args.deps,
            persister,
            snap,
            phase: Phase::Idle,
            generation: 0,
            window_started: now,
            deadline: now,
            run_task: None,
            delivery_failures: 0,
        })
    }

    /// Recovery after a crash or restart: deliver what was answered, re-run what was not.
    async fn post_start(
        &self,
        myself: ActorRef<GroupMsg>,
        state: &mut GroupState,
    ) -> Result<(), ActorProcessingErr> {
        if state.snap.undelivered.is_some() {
            state.phase = Phase::Running;
            state.deliver(&myself).await?;
        } else if state.snap.inflight.is_some() {
            state.wait_for_slot(&myself);
        } else if state.snap.has_trigger() {
            state.start_collecting(&myself);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GroupMsg>,
        state: &mut GroupState,
    ) -> Result<(), ActorProcessingErr> {
        // The record stays in the snapshot: the run is redone when the group comes back.
        state.run_task = None;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<GroupMsg>,
        msg: GroupMsg,
        state: &mut GroupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GroupMsg::Incoming(msg, taken) => state.take_in(&myself, msg, taken).await?,
            GroupMsg::WindowElapsed(generation) if generation == state.generation => {
                state.window_elapsed(&myself)
            }
            GroupMsg::SlotGranted(generation, slot) if generation == state.generation => {
                state.start_run(&myself, slot).await?
            }
            GroupMsg::RunFinished { run, outcome } => state.finished(&myself, run, outcome).await?,
            GroupMsg::CooldownElapsed(generation) if generation == state.generation => {
                state.phase = Phase::Idle;
                if state.snap.has_trigger() {
                    state.start_collecting(&myself);
                }
            }
            GroupMsg::RetryDelivery(generation) if generation == state.generation => {
                state.deliver(&myself).await?
            }
            GroupMsg::Status(reply) => {
                let _ = reply.send(GroupStatus {
                    chat: state.snap.chat.clone(),
                    title: state.snap.title.clone(),
                    phase: state.phase,
                    pending: state.snap.pending.len(),
                    has_session: state.snap.session_id.is_some(),
                });
            }
            GroupMsg::PrepareRetire(reply) => {
                let busy = state.snap.inflight.is_some() || state.snap.undelivered.is_some();
                let _ = reply.send(if busy {
                    Err("a run is in progress; try again once it has answered".into())
                } else {
                    Ok(())
                });
            }
            // A timer or grant for a phase that has passed.
            _ => {}
        }
        Ok(())
    }
}

impl GroupState {
    async fn save(&mut self) -> Result<(), ActorProcessingErr> {
        Ok(self.persister.save(&self.snap).await?)
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    async fn take_in(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        msg: IncomingMessage,
        taken: Taken,
    ) -> Result<(), ActorProcessingErr> {
        let trigger = is_trigger(&msg, &self.deps.settings.assistant_name);
        let mut next = self.snap.clone();
        if !next.push(ChatLine::from_message(&msg, trigger)) {
            // Seen before: a transport delivering again what it was not sure we kept.
            taken.kept();
            return Ok(());
        }
        // Persisted before it counts: a crash now must not lose the message. A store that
        // cannot write (a full disk) leaves the group as it was and `taken` unkept, so the
        // transport delivers the message again later; the group itself stays up, as a
        // restart could not save either. A stale incarnation is a zombie: it stops.
        match self.persister.save(&next).await {
            Ok(()) => self.snap = next,
            Err(e @ PersistError::Store(StoreError::Stale { .. })) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(chat = %self.snap.chat, "a message was not saved: {e}");
                return Ok(());
            }
        }
        taken.kept();
        crate::metrics::chat_message(trigger);
        match self.phase {
            Phase::Idle if trigger => self.start_collecting(myself),
            Phase::Collecting => {
                let window = self.deps.settings.collection_window;
                let extended = Instant::now() + window / 2;
                self.deadline = self
                    .deadline
                    .max(extended)
                    .min(self.window_started + window * 2);
            }
            _ => {}
        }
        Ok(())
    }

    /// IDLE → COLLECTING, unless the rate limit says wait.
    fn start_collecting(&mut self, myself: &ActorRef<GroupMsg>) {
        let generation = self.next_generation();
        let now = now_ms();
        let limit = self.deps.settings.rate_limit_per_minute.max(1) as usize;
        let window_ms = self.deps.settings.rate_window.as_millis() as u64;
        if self.snap.runs_within(now, window_ms) >= limit {
            // Try again when the oldest run leaves the window; the trigger stays pending.
            let oldest = self
                .snap
                .recent_runs_ms
                .iter()
                .min()
                .copied()
                .unwrap_or(now);
            let wait = Duration::from_millis((oldest + window_ms).saturating_sub(now) + 1);
            self.phase = Phase::Cooldown;
            myself.send_after(wait, move || GroupMsg::CooldownElapsed(generation));
            return;
        }
        self.phase = Phase::Collecting;
        self.window_started = Instant::now();
        self.deadline = self.window_started + self.deps.settings.collection_window;
        let window = self.deps.settings.collection_window;
        myself.send_after(window, move || GroupMsg::WindowElapsed(generation));
    }

    fn window_elapsed(&mut self, myself: &ActorRef<GroupMsg>) {
        if self.phase != Phase::Collecting {
            return;
        }
        let now = Instant::now();
        if self.deadline > now {
            let generation = self.generation;
            myself.send_after(self.deadline - now, move || {
                GroupMsg::WindowElapsed(generation)
            });
            return;
        }
        self.wait_for_slot(myself);
    }

    /// Asks for an agent slot without blocking the mailbox.
    fn wait_for_slot(&mut self, myself: &ActorRef<GroupMsg>) {
        self.phase = Phase::Waiting;
        let generation = self.next_generation();
        let (slots, me, who) = (
            self.deps.slots.clone(),
            myself.clone(),
            format!("chat {}", self.snap.chat),
        );
        tokio::spawn(async move {
            if let Some(slot) = crate::slots::acquire(&slots, who).await {
                let _ = me.cast(GroupMsg::SlotGranted(generation, slot));
            }
        });
    }

    /// Records the run durably, then starts the agent.
    async fn start_run(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        slot: SlotGuard,
    ) -> Result<(), ActorProcessingErr> {
        let record = match self.snap.inflight.clone() {
            Some(record) => record, // recovering a run that never answered
            None => {
                let record = self.snap.record_run(now_ms());
                self.save().await?;
                record
            }
        };
        self.phase = Phase::Running;
        let job = run::RunJob {
            run: record.run,
            chat: self.snap.chat.clone(),
            request: self.request(&record).await?,
            transport: self.deps.transport.clone(),
            runner: self.deps.runner.clone(),
            group: myself.clone(),
            slot,
        };
        self.run_task = Some(AbortOnDrop::spawn(run::run(job)));
        Ok(())
    }

    async fn request(&self, record: &RunRecord) -> Result<AgentRequest, ActorProcessingErr> {
        let s = &self.deps.settings;
        let dir = s.sessions_dir.join(session_dir_name(&self.snap.chat));
        let (home, workdir) = (dir.join("home"), dir.join("work"));
        // Off the async workers: a slow disk must not stall other actors.
        tokio::fs::create_dir_all(&home).await?;
        tokio::fs::create_dir_all(&workdir).await?;
        Ok(AgentRequest {
            owner: format!("chat-{}", session_dir_name(&self.snap.chat)),
            prompt: prompt(&s.assistant_name, &self.snap.title, &record.lines),
            model: s.model.clone(),
            resume: self.snap.session_id.clone(),
            home,
            workdir,
            allowed_tools: Vec::new(),
            system_prompt: s.system_prompt.clone(),
            max_turns: None,
            idle_timeout: s.idle_timeout,
            hard_timeout: s.hard_timeout,
        })
    }

    /// Records the reply durably, then delivers it.
    async fn finished(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        run: u64,
        outcome: AgentOutcome,
    ) -> Result<(), ActorProcessingErr> {
        let Some(record) = self.snap.inflight.take_if(|r| r.run == run) else {
            return Ok(());
        };
        self.run_task = None;
        if outcome.session_id.is_some() {
            self.snap.session_id = outcome.session_id.clone();
        }
        let text = match &outcome.error {
            None if !outcome.text.trim().is_empty() => outcome.text.clone(),
            None => "(The agent finished without saying anything.)".to_owned(),
            Some(error) => format!("Sorry, that did not work: {error}."),
        };
        self.snap.undelivered = Some(Reply {
            run,
            text,
            reply_to: record.reply_to().map(str::to_owned),
            parts_sent: 0,
        });
        self.save().await?;
        self.deliver(myself).await
    }

    /// Sends the recorded reply; on success forgets it and cools down, on failure tries
    /// again after the wait [`delivery::after_failure`] gives (or drops it, chat gone).
    async fn deliver(&mut self, myself: &ActorRef<GroupMsg>) -> Result<(), ActorProcessingErr> {
        let Some(reply) = self.snap.undelivered.clone() else {
            return Ok(());
        };
        let limit = self
            .snap
            .chat
            .platform()
            .map_or(4000, |p| p.max_message_chars());
        let parts = split_message(&reply.text, limit);
        for (i, part) in parts.iter().enumerate().skip(reply.parts_sent as usize) {
            let reply_to = if i == 0 {
                reply.reply_to.as_deref()
            } else {
                None
            };
            let sent = self
                .deps
                .transport
                .send(&self.snap.chat, part, Format::Markdown, reply_to)
                .await;
            if let Err(e) = sent {
                self.delivery_failures += 1;
                match delivery::after_failure(&e, self.delivery_failures) {
                    delivery::Retry::After(wait) => {
                        tracing::warn!(
                            chat = %self.snap.chat,
                            attempt = self.delivery_failures,
                            "reply not delivered yet ({e}); trying again in {} s",
                            wait.as_secs()
                        );
                        let generation = self.next_generation();
                        myself.send_after(wait, move || GroupMsg::RetryDelivery(generation));
                        return Ok(());
                    }
                    delivery::Retry::GiveUp => {
                        tracing::error!(
                            chat = %self.snap.chat,
                            "reply dropped: the chat cannot be reached ({e})"
                        );
                        break;
                    }
                }
            }
            self.delivery_failures = 0;
            if i + 1 < parts.len()
                && let Some(pending) = self.snap.undelivered.as_mut()
            {
                // Remembered durably, so a retry or a restart goes on after this part.
                pending.parts_sent = (i + 1) as u32;
                self.save().await?;
            }
        }
        self.delivery_failures = 0;
        self.snap.undelivered = None;
        self.save().await?;
        self.phase = Phase::Cooldown;
        let generation = self.next_generation();
        myself.send_after(self.deps.settings.cooldown, move || {
            GroupMsg::CooldownElapsed(generation)
        });
        Ok(())
    }
}

/// A directory name for a chat: readable, and unique even when two ids clean up the same.
pub fn session_dir_name(chat: &ChatId) -> String {
    let clean: String = chat
        .0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let hash = chat.0.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{clean}-{:08x}", hash as u32)
}
