//! [`DiscordGateway`]: the receiving half of the Discord adapter.
//!
//! `pre_start` checks the token (`GET /users/@me`, which also names the bot), asks for the
//! gateway (`GET /gateway/bot`, unless `DISCORD_GATEWAY_URL` names one) and starts serenity's
//! client in a task of its own. Serenity's shard runner holds the WebSocket: it identifies,
//! heartbeats, and resumes or re-identifies by itself after a drop. Its event handler here
//! only forwards events to the actor, which converts them and feeds the inbound sink, so all
//! counting and deciding happens in one place.
//!
//! Failures: a refused token fails the start (REST) or the actor (gateway close 4004), naming
//! `DISCORD_TOKEN`. Serenity retries a lost connection forever, so the actor watches the
//! shard's stage and fails once it has not been connected for `reconnect_grace`: from then on
//! the supervisor's backoff and breaker decide.
//!
//! Discord does not replay events across sessions, so messages sent while the bot is
//! disconnected (longer than a resume allows) are not seen; there is no offset to persist.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actors::chat::InboundSink;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serenity::Client;
use serenity::client::{ClientBuilder, Context, EventHandler};
use serenity::gateway::{ConnectionStage, GatewayError, ShardManager};
use serenity::http::{Http, HttpError};
use serenity::model::channel::Message;
use serenity::model::event::ResumedEvent;
use serenity::model::gateway::Ready;
use serenity::model::id::{ShardId, UserId};
use supervisors::{ChildSpec, StartCtx};
use tokio::task::JoinHandle;

use super::{DiscordConfig, INTENTS, REQUEST_TIMEOUT, to_incoming, token_refused};

/// How long `post_stop` waits for serenity to close the WebSocket. Below the supervisor's
/// default 5 s shutdown timeout, so a slow close is abandoned rather than the actor killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(4);

/// What the gateway actor needs; cloned for every (re)start.
#[derive(Clone)]
pub struct GatewayArgs {
    pub config: DiscordConfig,
    pub sink: InboundSink,
    /// How long the gateway may stay disconnected (serenity reconnecting by itself) before
    /// the actor fails and leaves the retrying to its supervisor.
    pub reconnect_grace: Duration,
}

impl GatewayArgs {
    /// Arguments with a 60 s reconnect grace: long enough for serenity's own resume and
    /// re-identify (it waits 5 s between logins), short enough to surface a dead network.
    pub fn new(config: DiscordConfig, sink: InboundSink) -> Self {
        GatewayArgs {
            config,
            sink,
            reconnect_grace: Duration::from_secs(60),
        }
    }
}

/// The gateway actor's messages. Events come from serenity's handler; `Watch` is its timer.
pub enum GatewayMsg {
    /// MESSAGE_CREATE.
    Created(Box<Message>),
    /// READY: a new session was identified.
    Ready { session_id: String },
    /// RESUMED: the session survived a reconnect.
    Resumed,
    /// Serenity's client returned: the gateway is gone for good (or was shut down).
    Ended(Result<(), String>),
    /// Check the shard's connection.
    Watch,
    /// Counters since this incarnation started.
    Stats(RpcReplyPort<GatewayStats>),
}

/// Counters of one gateway incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// The shard was connected at the last check or event.
    pub connected: bool,
    /// READY events: identified sessions.
    pub sessions: u64,
    /// RESUMED events.
    pub resumes: u64,
    /// Messages handed to the sink.
    pub delivered: u64,
    /// Messages from bots (itself included), system messages, messages without text.
    pub ignored: u64,
}

/// The gateway actor.
pub struct DiscordGateway;

pub struct GatewayState {
    me: UserId,
    sink: InboundSink,
    manager: Arc<ShardManager>,
    /// The task running serenity's `Client::start`.
    client: JoinHandle<()>,
    /// Set in `post_stop`; tells the event handler that nobody listens any more.
    stopped: Arc<AtomicBool>,
    grace: Duration,
    /// Since when the shard has not been connected; `None` while it is.
    down_since: Option<Instant>,
    stats: GatewayStats,
}

impl DiscordGateway {
    /// The child spec for the chat supervisor: `transport:discord`, restarted with the
    /// supervisor's backoff; add a breaker with [`ChildSpec::breaker`].
    pub fn child_spec(args: GatewayArgs) -> ChildSpec {
        ChildSpec::new("transport:discord", move |ctx: StartCtx| {
            let args = args.clone();
            async move { ctx.spawn(DiscordGateway, args).await.map(Some) }
        })
        .kind("transport")
    }
}

impl Actor for DiscordGateway {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayState, ActorProcessingErr> {
        let http = args.config.http()?;
        let api = || {
            args.config
                .api_url
                .as_deref()
                .unwrap_or("https://discord.com")
        };
        let me = within(http.get_current_user(), "GET /users/@me")
            .await
            .map_err(|e| start_error(&e, api()))?;
        let gateway = gateway_url(&http, &args.config)
            .await
            .map_err(|e| start_error(&e, api()))?;

        let stopped = Arc::new(AtomicBool::new(false));
        let manager_cell = Arc::new(OnceLock::new());
        let forwarder = Forwarder {
            actor: myself.clone(),
            stopped: stopped.clone(),
            manager: manager_cell.clone(),
            reaping: AtomicBool::new(false),
        };
        // Building the client asks `GET /gateway` once more; its answer is replaced below.
        let builder = ClientBuilder::new_with_http(http, INTENTS).event_handler(forwarder);
        let client = within(builder, "GET /gateway")
            .await
            .map_err(|e| start_error(&e, api()))?;
        *client.ws_url.lock().await = gateway.clone();
        let manager = client.shard_manager.clone();
        let _ = manager_cell.set(manager.clone());
        let client = tokio::spawn(run_client(client, myself.clone()));

        tracing::info!(bot = %me.name, %gateway, "Discord gateway starting");
        myself.send_after(watch_every(args.reconnect_grace), || GatewayMsg::Watch);
        Ok(GatewayState {
            me: me.id,
            sink: args.sink,
            manager,
            client,
            stopped,
            grace: args.reconnect_grace,
            down_since: Some(Instant::now()),
            stats: GatewayStats::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Created(message) => match to_incoming(&message, state.me) {
                Some(incoming) => {
                    state.stats.delivered += 1;
                    (state.sink)(incoming);
                }
                None => state.stats.ignored += 1,
            },
            GatewayMsg::Ready { session_id } => {
                tracing::info!(%session_id, "Discord gateway session ready");
                state.stats.sessions += 1;
                state.mark_connected();
            }
            GatewayMsg::Resumed => {
                tracing::info!("Discord gateway session resumed");
                state.stats.resumes += 1;
                state.mark_connected();
            }
            GatewayMsg::Ended(result) => {
                let why = result.err().unwrap_or_else(|| "it closed".into());
                return Err(format!("the Discord gateway stopped: {why}").into());
            }
            GatewayMsg::Watch => {
                state.watch().await?;
                myself.send_after(watch_every(state.grace), || GatewayMsg::Watch);
            }
            GatewayMsg::Stats(reply) => {
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(state.stats.clone());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GatewayMsg>,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        state.stopped.store(true, Ordering::Release);
        // Closes the WebSocket (close code 1000) and stops the shard queuer, after which
        // `Client::start` returns by itself.
        if tokio::time::timeout(SHUTDOWN_WAIT, state.manager.shutdown_all())
            .await
            .is_err()
        {
            tracing::warn!("the Discord gateway did not close within {SHUTDOWN_WAIT:?}");
        }
        state.client.abort();
        Ok(())
    }
}

impl GatewayState {
    fn mark_connected(&mut self) {
        self.stats.connected = true;
        self.down_since = None;
    }

    /// Fails once the shard has not been connected for the grace period. The stage comes from
    /// serenity's shard manager, which its runner updates on every change.
    async fn watch(&mut self) -> Result<(), ActorProcessingErr> {
        let stage = self
            .manager
            .runners
            .lock()
            .await
            .get(&ShardId(0))
            .map(|runner| runner.stage);
        if stage == Some(ConnectionStage::Connected) {
            self.mark_connected();
            return Ok(());
        }
        self.stats.connected = false;
        let since = *self.down_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.grace {
            return Ok(());
        }
        let stage = stage.map_or("no shard running".to_owned(), |s| format!("{s:?}"));
        Err(format!(
            "the Discord gateway has not been connected for {:?} ({stage}); \
             check the network and DISCORD_GATEWAY_URL",
            self.grace
        )
        .into())
    }
}

/// Checks often enough to notice within a quarter of the grace, never busily.
fn watch_every(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Runs serenity's client until it gives up, and says so.
async fn run_client(mut client: Client, actor: ActorRef<GatewayMsg>) {
    let result = client.start().await.map_err(|e| gateway_failure(&e));
    // After `post_stop` nobody wants to know.
    let _ = actor.cast(GatewayMsg::Ended(result));
}

/// The configured gateway, else the one `GET /gateway/bot` names.
async fn gateway_url(http: &Http, config: &DiscordConfig) -> Result<String, CallError> {
    if let Some(url) = &config.gateway_url {
        return Ok(url.clone());
    }
    let gateway = within(http.get_bot_gateway(), "GET /gateway/bot").await?;
    let limit = &gateway.session_start_limit;
    if limit.remaining == 0 {
        // Discord refuses logins until the window resets; identifying anyway fails the shard.
        tracing::warn!(
            reset_after_ms = limit.reset_after,
            "Discord allows no more gateway logins for now; the gateway will wait"
        );
    }
    Ok(gateway.url)
}

/// A REST call of the start that failed or took too long.
enum CallError {
    Discord(serenity::Error),
    TimedOut(&'static str),
}

/// A REST call bounded by [`REQUEST_TIMEOUT`] (serenity sets none).
async fn within<T>(
    call: impl IntoFuture<Output = Result<T, serenity::Error>>,
    what: &'static str,
) -> Result<T, CallError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result.map_err(CallError::Discord),
        Err(_) => Err(CallError::TimedOut(what)),
    }
}

/// Why a REST call of the start failed, phrased so the user knows what to fix.
fn start_error(error: &CallError, api: &str) -> ActorProcessingErr {
    let why = match error {
        CallError::Discord(serenity::Error::Http(HttpError::UnsuccessfulRequest(answer)))
            if answer.status_code.as_u16() == 401 =>
        {
            return token_refused().into();
        }
        CallError::Discord(other) => other.to_string(),
        CallError::TimedOut(what) => format!("{what} timed out after {REQUEST_TIMEOUT:?}"),
    };
    format!(
        "cannot reach the Discord API at {api} ({why}); check the network, \
         DISCORD_API_URL and DISCORD_TOKEN"
    )
    .into()
}

/// Why serenity's client gave up, phrased so the user knows what to fix.
fn gateway_failure(error: &serenity::Error) -> String {
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => {
            "the gateway refused the bot token (close code 4004); check DISCORD_TOKEN".into()
        }
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => {
            "the gateway refused the Message Content intent (close code 4014); switch it on \
             in Discord's Developer Portal: Bot → Privileged Gateway Intents"
                .into()
        }
        other => other.to_string(),
    }
}

/// Serenity's event handler: forwards to the actor, nothing else.
struct Forwarder {
    actor: ActorRef<GatewayMsg>,
    stopped: Arc<AtomicBool>,
    manager: Arc<OnceLock<Arc<ShardManager>>>,
    reaping: AtomicBool,
}

impl Forwarder {
    fn forward(&self, msg: GatewayMsg) {
        if !self.stopped.load(Ordering::Acquire) && self.actor.cast(msg).is_ok() {
            return;
        }
        // The actor is gone, yet a shard still reports. Serenity's shard queuer outlives a
        // `shutdown_all` made while no shard was running (it returns early, leaving the
        // queuer retrying), so a connection can come up after the actor stopped. Close it,
        // and the queuer with it, or it would hold a session nobody reads.
        if !self.reaping.swap(true, Ordering::AcqRel)
            && let Some(manager) = self.manager.get().cloned()
        {
            tracing::info!("closing a Discord gateway session left over from a stopped actor");
            tokio::spawn(async move { manager.shutdown_all().await });
        }
    }
}

#[serenity::async_trait]
impl EventHandler for Forwarder {
    async fn message(&self, _ctx: Context, message: Message) {
        self.forward(GatewayMsg::Created(Box::new(message)));
    }

    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.forward(GatewayMsg::Ready {
            session_id: ready.session_id,
        });
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        self.forward(GatewayMsg::Resumed);
    }
}
