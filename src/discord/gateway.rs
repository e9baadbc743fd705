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
//! the supervisor's backoff and breaker decide. Every end of the actor closes the connection
//! (see `client.rs`: ractor skips `post_stop` on failure, so failing closes first).
//!
//! Discord does not replay events across sessions, so messages sent while the bot is
//! disconnected (longer than a resume allows) are not seen; there is no offset to persist.

use std::time::{Duration, Instant};

use actors::chat::{InboundSink, deliver_once};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serenity::gateway::ConnectionStage;
use serenity::http::{Http, HttpError};
use serenity::model::id::UserId;
use supervisors::{ChildSpec, StartCtx};

use super::client::Session;
pub use super::messages::{GatewayMsg, GatewayStats};
use super::{DiscordConfig, REQUEST_TIMEOUT, to_incoming, token_refused};

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

/// The gateway actor.
pub struct DiscordGateway;

pub struct GatewayState {
    me: UserId,
    sink: InboundSink,
    session: Session,
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

        let session = Session::start(http, gateway.clone(), myself.clone());
        let session = within(session, "GET /gateway")
            .await
            .map_err(|e| start_error(&e, api()))?;
        tracing::info!(bot = %me.name, %gateway, "Discord gateway starting");
        myself.send_after(watch_every(args.reconnect_grace), || GatewayMsg::Watch);
        Ok(GatewayState {
            me: me.id,
            sink: args.sink,
            session,
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
        let result = state.handle(&myself, msg).await;
        if result.is_err() {
            // ractor will not call `post_stop` after a failed handler.
            state.session.close().await;
        }
        result
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GatewayMsg>,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        state.session.close().await;
        Ok(())
    }
}

impl GatewayState {
    async fn handle(
        &mut self,
        myself: &ActorRef<GatewayMsg>,
        msg: GatewayMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Created(message) => match to_incoming(&message, self.me) {
                Some(incoming) => {
                    self.stats.delivered += 1;
                    deliver_once(&self.sink, incoming);
                }
                None => self.stats.ignored += 1,
            },
            GatewayMsg::Ready { session_id } => {
                tracing::info!(%session_id, "Discord gateway session ready");
                self.stats.sessions += 1;
                self.mark_connected();
            }
            GatewayMsg::Resumed => {
                tracing::info!("Discord gateway session resumed");
                self.stats.resumes += 1;
                self.mark_connected();
            }
            GatewayMsg::Ended(result) => {
                let why = result.err().unwrap_or_else(|| "it closed".into());
                return Err(format!("the Discord gateway stopped: {why}").into());
            }
            GatewayMsg::Watch => {
                self.watch().await?;
                myself.send_after(watch_every(self.grace), || GatewayMsg::Watch);
            }
            GatewayMsg::Stats(reply) => {
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(self.stats.clone());
            }
        }
        Ok(())
    }

    fn mark_connected(&mut self) {
        self.stats.connected = true;
        self.down_since = None;
    }

    /// Fails once the shard has not been connected for the grace period. The stage comes from
    /// serenity's shard manager, which its runner updates on every change.
    async fn watch(&mut self) -> Result<(), ActorProcessingErr> {
        let stage = self.session.stage().await;
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
