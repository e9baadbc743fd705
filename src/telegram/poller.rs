//! [`TelegramPoller`]: the receiving half of the Telegram adapter.
//!
//! A long poll (`getUpdates`) runs in a task of its own and reports back as a message, so the
//! actor keeps answering (stats, stop) while Telegram holds the request open; `post_stop`
//! aborts a poll in flight. Each batch is converted and handed to the inbound sink, and only
//! once every message of it is kept (saved by its group or the router's inbox, or a command
//! answered) is the next offset persisted under [`OFFSET_KEY`]. A message not kept (a chat
//! that cannot save now: a full disk) fails the poll, so Telegram sends the batch again; so
//! does a crash before the save. Delivery is at least once: groups drop messages they have
//! seen and the router commands it has answered.
//!
//! Failures: a refused token stops the actor at once (nothing will fix itself); flood control
//! waits as long as Telegram asks; other errors are retried with a short backoff, and after
//! [`MAX_CONSECUTIVE_FAILURES`] the actor fails so its supervisor's backoff and breaker take
//! over. Updates that do not parse are counted and skipped, never fatal.

use std::sync::Arc;
use std::time::Duration;

use actors::chat::InboundSink;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Persister, Snapshot, SnapshotStore};
use supervisors::{ActorStats, ChildSpec, StartCtx};
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::{ApiError, Bot, RequestError};
use tokio::task::JoinHandle;

use super::{BotIdentity, TelegramConfig, to_incoming};

/// Where the next update offset is persisted.
pub const OFFSET_KEY: &str = "transport/telegram";

/// Poll failures in a row after which the actor gives up and lets its supervisor decide.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// How long a batch's messages may take to be kept before the batch is asked for again.
/// Generous: a group saves within milliseconds, but may be busy sending a reply first.
const KEEP_WAIT: Duration = Duration::from_secs(60);

/// Persisted state: the `offset` for the next `getUpdates` (last update id + 1), which also
/// tells Telegram that everything before it was received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramOffset {
    pub offset: i32,
}

impl Snapshot for TelegramOffset {
    const VERSION: u16 = 1;
}

/// What the poller needs; cloned for every (re)start.
#[derive(Clone)]
pub struct PollerArgs {
    pub config: TelegramConfig,
    pub store: Arc<dyn SnapshotStore>,
    pub sink: InboundSink,
    /// How long one `getUpdates` may wait for news. teloxide's HTTP client gives up after
    /// 17 s, so this must stay well below that.
    pub poll_timeout: Duration,
    /// Snapshot-age counters for introspection (set by [`TelegramPoller::child_spec`]).
    pub stats: Option<Arc<ActorStats>>,
}

impl PollerArgs {
    /// Arguments with the default 10 s long poll.
    pub fn new(config: TelegramConfig, store: Arc<dyn SnapshotStore>, sink: InboundSink) -> Self {
        PollerArgs {
            config,
            store,
            sink,
            poll_timeout: Duration::from_secs(10),
            stats: None,
        }
    }
}

/// The poller's messages. `Poll` and `Polled` are its own timer and loop; others only ask.
pub enum PollerMsg {
    /// Start one long poll.
    Poll,
    /// A long poll finished.
    Polled(Result<Vec<Update>, RequestError>),
    /// A batch was handed over: `lost` of its messages were not kept; `next` is the offset
    /// past it.
    Handed { next: i32, lost: u64 },
    /// Counters since this incarnation started.
    Stats(RpcReplyPort<PollerStats>),
}

/// Counters of one poller incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollerStats {
    /// The offset the next poll will use.
    pub offset: i32,
    /// Messages handed to the sink.
    pub delivered: u64,
    /// Updates without text, and kinds borg does not act on.
    pub ignored: u64,
    /// Updates that did not parse.
    pub malformed: u64,
    /// Failed polls (network, flood control, server errors).
    pub poll_errors: u64,
    /// Messages handed over but not kept (a chat could not save them), so asked for again.
    pub not_kept: u64,
}

/// The long-polling actor.
pub struct TelegramPoller;

pub struct PollerState {
    bot: Bot,
    me: BotIdentity,
    sink: InboundSink,
    persister: Persister<TelegramOffset>,
    poll_timeout: Duration,
    /// The long poll, or the wait for a batch to be kept: one at a time.
    in_flight: Option<JoinHandle<()>>,
    /// Failed polls since the last good one, for the backoff and the give-up rule.
    failures: u32,
    stats: PollerStats,
}

impl TelegramPoller {
    /// The child spec for the chat supervisor: `transport:telegram`, restarted with the
    /// supervisor's backoff; add a breaker with [`ChildSpec::breaker`].
    pub fn child_spec(args: PollerArgs) -> ChildSpec {
        ChildSpec::new("transport:telegram", move |ctx: StartCtx| {
            let mut args = args.clone();
            async move {
                args.stats = Some(ctx.stats.clone());
                ctx.spawn(TelegramPoller, args).await.map(Some)
            }
        })
        .kind("transport")
    }
}

impl Actor for TelegramPoller {
    type Msg = PollerMsg;
    type State = PollerState;
    type Arguments = PollerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PollerMsg>,
        args: PollerArgs,
    ) -> Result<PollerState, ActorProcessingErr> {
        let bot = args.config.bot()?;
        let me = bot.get_me().await.map_err(|e| start_error(&e, &bot))?;
        let username = me.user.username.clone().ok_or(
            "Telegram's getMe answered without a username; is TELEGRAM_BOT_TOKEN a bot token?",
        )?;
        let me = BotIdentity {
            id: me.user.id,
            username,
        };
        let (persister, saved) =
            Persister::<TelegramOffset>::restore(args.store, OFFSET_KEY, args.stats).await?;
        let offset = saved.unwrap_or_default().offset;
        tracing::info!(bot = %me.username, offset, "Telegram poller started");
        myself.cast(PollerMsg::Poll)?;
        Ok(PollerState {
            bot,
            me,
            sink: args.sink,
            persister,
            poll_timeout: args.poll_timeout,
            in_flight: None,
            failures: 0,
            stats: PollerStats {
                offset,
                ..PollerStats::default()
            },
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PollerMsg>,
        msg: PollerMsg,
        state: &mut PollerState,
    ) -> Result<(), ActorProcessingErr> {
        if let PollerMsg::Polled(_) | PollerMsg::Handed { .. } = msg {
            // Cleared here, not when the task ends: its answer can overtake its own exit.
            state.in_flight = None;
        }
        match msg {
            PollerMsg::Poll => {
                // Two polls at once would make Telegram end one with a 409 Conflict.
                if state.in_flight.is_none() {
                    state.in_flight = Some(spawn_poll(myself, state));
                }
            }
            PollerMsg::Polled(Ok(updates)) => {
                let next = hand_over(&myself, state, updates.into_iter().map(Some), None);
                state.in_flight = Some(next);
            }
            PollerMsg::Handed { next, lost: 0 } => {
                if next != state.stats.offset {
                    let saved = state.persister.save(&TelegramOffset { offset: next }).await;
                    if let Err(e) = saved {
                        // The batch comes again, and is recognised. Failing instead would not
                        // help: a restart cannot save either, and commands would go unanswered.
                        let why = format!("the Telegram offset was not saved ({e})");
                        return back_off(&myself, state, &why, false);
                    }
                    state.stats.offset = next;
                }
                state.failures = 0;
                myself.cast(PollerMsg::Poll)?;
            }
            PollerMsg::Handed { lost, .. } => {
                state.stats.not_kept += lost;
                let why = format!(
                    "{lost} message(s) of a batch were not saved (is DATA_DIR writable?); \
                     asking Telegram for the batch again"
                );
                // Not the poller's fault, and a restart would not help: wait, never give up.
                back_off(&myself, state, &why, false)?;
            }
            PollerMsg::Polled(Err(error)) => {
                // One update whose id teloxide cannot read fails the whole batch; salvage the
                // rest from the raw answer rather than asking for the same batch forever.
                if let RequestError::InvalidJson { raw, source } = &error
                    && let Some((updates, last_id)) = salvage(raw)
                {
                    tracing::warn!(error = %source, "a Telegram update batch did not parse; salvaging");
                    if last_id.is_some_and(|id| offset_after(id) > state.stats.offset) {
                        let next = hand_over(&myself, state, updates.into_iter(), last_id);
                        state.in_flight = Some(next);
                    } else {
                        // No readable id to move past: asking again at once would spin.
                        on_poll_error(&myself, state, error)?;
                    }
                } else {
                    on_poll_error(&myself, state, error)?;
                }
            }
            PollerMsg::Stats(reply) => {
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(state.stats.clone());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PollerMsg>,
        state: &mut PollerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(poll) = state.in_flight.take() {
            poll.abort();
        }
        Ok(())
    }
}

fn spawn_poll(myself: ActorRef<PollerMsg>, state: &PollerState) -> JoinHandle<()> {
    let request = state
        .bot
        .get_updates()
        .offset(state.stats.offset)
        .timeout(u32::try_from(state.poll_timeout.as_secs()).unwrap_or(10))
        .allowed_updates([AllowedUpdate::Message]);
    tokio::spawn(async move {
        let result = request.await;
        // The poller may have stopped meanwhile; then nobody wants the answer.
        let _ = myself.cast(PollerMsg::Polled(result));
    })
}

/// Hands every message of a batch to the sink, and waits off the mailbox for them all to be
/// kept; reports [`PollerMsg::Handed`]. `None` entries are updates that did not parse;
/// `last_id` covers ids seen only in the raw answer.
fn hand_over(
    myself: &ActorRef<PollerMsg>,
    state: &mut PollerState,
    updates: impl Iterator<Item = Option<Update>>,
    last_id: Option<u32>,
) -> JoinHandle<()> {
    let before = state.stats.offset;
    let mut next = last_id.map_or(before, |id| before.max(offset_after(id)));
    let mut receipts = Vec::new();
    for update in updates {
        let Some(update) = update else {
            state.stats.malformed += 1;
            continue;
        };
        next = next.max(offset_after(update.id.0));
        match &update.kind {
            UpdateKind::Message(msg) => match to_incoming(msg, &state.me) {
                Some(incoming) => {
                    state.stats.delivered += 1;
                    receipts.push((state.sink)(incoming));
                }
                None => state.stats.ignored += 1,
            },
            UpdateKind::Error(raw) => {
                tracing::warn!(id = update.id.0, %raw, "skipping a Telegram update that did not parse");
                state.stats.malformed += 1;
            }
            _ => state.stats.ignored += 1,
        }
    }
    let myself = myself.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + KEEP_WAIT;
        let mut lost = 0;
        for receipt in receipts {
            if !receipt.kept_by(deadline).await {
                lost += 1;
            }
        }
        // The poller may have stopped meanwhile; its successor asks for the batch again.
        let _ = myself.cast(PollerMsg::Handed { next, lost });
    })
}

fn offset_after(id: u32) -> i32 {
    i32::try_from(id).map_or(i32::MAX, |id| id.saturating_add(1))
}

/// Parses a batch one update at a time: the updates that parse, `None` for those that do not,
/// and the highest update id readable at all. `None` if the answer is not a batch.
fn salvage(raw: &str) -> Option<(Vec<Option<Update>>, Option<u32>)> {
    let answer: serde_json::Value = serde_json::from_str(raw).ok()?;
    let batch = answer.get("result")?.as_array()?;
    let last_id = batch
        .iter()
        .filter_map(|u| u.get("update_id")?.as_u64())
        .filter_map(|id| u32::try_from(id).ok())
        .max();
    let updates = batch
        .iter()
        // From text, not from the `Value`: teloxide's update-kind parser needs borrowed keys,
        // which a `Value` cannot lend, and would turn every update into an error.
        .map(|u| serde_json::from_str(&u.to_string()).ok())
        .collect();
    Some((updates, last_id))
}

fn on_poll_error(
    myself: &ActorRef<PollerMsg>,
    state: &mut PollerState,
    error: RequestError,
) -> Result<(), ActorProcessingErr> {
    state.stats.poll_errors += 1;
    match &error {
        RequestError::Api(ApiError::InvalidToken) => Err(token_refused().into()),
        RequestError::RetryAfter(after) => {
            let delay = after.duration();
            tracing::warn!(%error, ?delay, "Telegram getUpdates failed; polling again later");
            myself.send_after(delay, || PollerMsg::Poll);
            Ok(())
        }
        _ => back_off(
            myself,
            state,
            &format!("Telegram getUpdates failed: {error}"),
            true,
        ),
    }
}

/// Polls again after a failure, waiting longer each time (0.5 s, doubling up to 10 s). With
/// `give_up`, fails the actor (for its supervisor's backoff and breaker) after
/// [`MAX_CONSECUTIVE_FAILURES`] in a row.
fn back_off(
    myself: &ActorRef<PollerMsg>,
    state: &mut PollerState,
    why: &str,
    give_up: bool,
) -> Result<(), ActorProcessingErr> {
    state.failures += 1;
    if give_up && state.failures >= MAX_CONSECUTIVE_FAILURES {
        return Err(format!("{} failures in a row; the last: {why}", state.failures).into());
    }
    // 0.5 s, 1 s, 2 s, 4 s: rides out a Wi-Fi blip without hammering the API; capped so
    // that commands still answer within seconds while a disk is full.
    let delay = (Duration::from_millis(500) * 2u32.pow((state.failures - 1).min(5)))
        .min(Duration::from_secs(10));
    tracing::warn!(?delay, "{why}; polling again later");
    myself.send_after(delay, || PollerMsg::Poll);
    Ok(())
}

fn token_refused() -> String {
    "Telegram refused the bot token (401 Unauthorized); check TELEGRAM_BOT_TOKEN".into()
}

/// Why `getMe` failed, phrased so the user knows what to fix.
fn start_error(error: &RequestError, bot: &Bot) -> ActorProcessingErr {
    match error {
        RequestError::Api(ApiError::InvalidToken) => token_refused().into(),
        other => format!(
            "cannot reach the Telegram Bot API at {} ({other}); check the network, \
             TELEGRAM_API_URL and TELEGRAM_BOT_TOKEN",
            bot.api_url()
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisors::snapshot;

    #[test]
    fn offset_snapshot_v1_golden_bytes() {
        // Frozen: changing this means a new version and an upgrade path.
        let bytes = snapshot::encode(&TelegramOffset { offset: 5 });
        assert_eq!(bytes, [b'B', b'S', b'N', b'P', 1, 0, 10]);
        let back: TelegramOffset = snapshot::decode(&bytes).unwrap();
        assert_eq!(back.offset, 5);
    }

    #[test]
    fn salvage_keeps_good_updates_and_the_highest_id() {
        let raw = r#"{"ok":true,"result":[
            {"update_id":"seven","message":{}},
            {"update_id":8,"edited_message":{"bogus":true}},
            {"update_id":9,"message":{"message_id":1,"date":0,
              "chat":{"id":1,"type":"private","first_name":"A"},"text":"hi"}}]}"#;
        let (updates, last) = salvage(raw).unwrap();
        assert_eq!(last, Some(9));
        assert!(updates[0].is_none());
        assert!(matches!(
            updates[1].as_ref().unwrap().kind,
            UpdateKind::Error(_)
        ));
        assert!(matches!(
            updates[2].as_ref().unwrap().kind,
            UpdateKind::Message(_)
        ));
        assert!(salvage("<html>bad gateway</html>").is_none());
    }

    #[test]
    fn offsets_never_overflow() {
        assert_eq!(offset_after(41), 42);
        assert_eq!(offset_after(u32::MAX), i32::MAX);
    }
}
