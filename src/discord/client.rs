//! [`Session`]: serenity's gateway client as the gateway actor owns it: started in a task of
//! its own, its events forwarded to the actor, and closed for sure when the actor ends.
//!
//! Closing needs care, because serenity's shard manager is not airtight:
//! - `ShardManager::shutdown_all` returns early, without stopping the shard queuer, while no
//!   shard runner is registered (between failed connection attempts); the queuer then keeps
//!   retrying and can bring a connection up after the actor is gone.
//! - After a restart of its own, the manager has a stale "shutdown finished" notice queued,
//!   so a later shutdown can forget the runner without ever telling it to stop.
//! - ractor skips `post_stop` when a handler fails, panics or the actor is killed.
//!
//! Hence three layers: the runner that last reported a session is told to stop directly
//! (plus `shutdown_all` for the queuer); dropping a `Session` does the same; and the event
//! handler stops any runner that still reports after its actor has stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ractor::ActorRef;
use serenity::Client;
use serenity::client::{ClientBuilder, Context, EventHandler};
use serenity::gateway::{
    ConnectionStage, GatewayError, ShardManager, ShardMessenger, ShardRunnerMessage,
};
use serenity::http::Http;
use serenity::model::channel::Message;
use serenity::model::event::ResumedEvent;
use serenity::model::gateway::Ready;
use serenity::model::id::ShardId;
use tokio::task::JoinHandle;

use super::INTENTS;
use super::messages::GatewayMsg;

/// How long closing waits for serenity to close the WebSocket: below the supervisor's
/// default 5 s shutdown timeout, so a slow close is abandoned rather than the actor killed.
const CLOSE_WAIT: Duration = Duration::from_secs(4);

/// The one shard borg runs (a bot in fewer than 2,500 guilds needs no more).
const SHARD: ShardId = ShardId(0);

/// A running serenity client and what it takes to stop it.
pub struct Session {
    manager: Arc<ShardManager>,
    /// The task running `Client::start`.
    client: JoinHandle<()>,
    /// Set once closing starts; tells the event handler that nobody listens any more.
    stopped: Arc<AtomicBool>,
    /// The shard runner that last reported a session, to tell it to stop directly.
    runner: Arc<Mutex<Option<ShardMessenger>>>,
}

impl Session {
    /// Builds serenity's client on `http` and starts it against `gateway` in a task; events
    /// and the client's end go to `actor`.
    pub async fn start(
        http: Http,
        gateway: String,
        actor: ActorRef<GatewayMsg>,
    ) -> Result<Session, serenity::Error> {
        let stopped = Arc::new(AtomicBool::new(false));
        let runner = Arc::new(Mutex::new(None));
        let manager_cell = Arc::new(OnceLock::new());
        let forwarder = Forwarder {
            actor: actor.clone(),
            stopped: stopped.clone(),
            runner: runner.clone(),
            manager: manager_cell.clone(),
            reaping: AtomicBool::new(false),
        };
        // Building asks `GET /gateway` (falling back to discord.gg if that fails); the URL
        // chosen by the caller replaces its answer before any shard starts.
        let client = ClientBuilder::new_with_http(http, INTENTS)
            .event_handler(forwarder)
            .await?;
        *client.ws_url.lock().await = gateway;
        let manager = client.shard_manager.clone();
        let _ = manager_cell.set(manager.clone());
        let client = tokio::spawn(run_client(client, actor));
        Ok(Session {
            manager,
            client,
            stopped,
            runner,
        })
    }

    /// The shard's connection stage, as its runner last reported it to the manager.
    pub async fn stage(&self) -> Option<ConnectionStage> {
        let runners = self.manager.runners.lock().await;
        runners.get(&SHARD).map(|runner| runner.stage)
    }

    /// Closes the connection and stops serenity's tasks. Waits (bounded) for a clean close
    /// only while connected: otherwise there is no WebSocket to close, and the manager may
    /// be stuck in a restart of its own for seconds.
    pub async fn close(&mut self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let connected = self.stage().await == Some(ConnectionStage::Connected);
        stop_runner(&self.runner);
        let manager = self.manager.clone();
        let shutdown = async move { manager.shutdown_all().await };
        if connected {
            if tokio::time::timeout(CLOSE_WAIT, shutdown).await.is_err() {
                tracing::warn!("the Discord gateway did not close within {CLOSE_WAIT:?}");
            }
        } else {
            tokio::spawn(shutdown);
        }
        self.client.abort();
    }
}

impl Drop for Session {
    /// For the ends that skip `post_stop` (a kill, a panic): close without waiting.
    fn drop(&mut self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        stop_runner(&self.runner);
        let manager = self.manager.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { manager.shutdown_all().await });
        }
        self.client.abort();
    }
}

fn stop_runner(runner: &Mutex<Option<ShardMessenger>>) {
    let runner = runner.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(runner) = runner {
        runner.send_to_shard(ShardRunnerMessage::Shutdown(SHARD, 1000));
    }
}

/// Runs serenity's client until it gives up, and says so.
async fn run_client(mut client: Client, actor: ActorRef<GatewayMsg>) {
    let result = client.start().await.map_err(|e| gateway_failure(&e));
    // After closing nobody wants to know.
    let _ = actor.cast(GatewayMsg::Ended(result));
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
    runner: Arc<Mutex<Option<ShardMessenger>>>,
    /// To stop the shard queuer that started a left-over runner, once.
    manager: Arc<OnceLock<Arc<ShardManager>>>,
    reaping: AtomicBool,
}

impl Forwarder {
    fn forward(&self, ctx: &Context, msg: GatewayMsg) {
        if !self.stopped.load(Ordering::Acquire) && self.actor.cast(msg).is_ok() {
            return;
        }
        // A runner that outlived its actor: see the module docs.
        tracing::info!("closing a Discord gateway session left over from a stopped actor");
        ctx.shard
            .send_to_shard(ShardRunnerMessage::Shutdown(ctx.shard_id, 1000));
        if !self.reaping.swap(true, Ordering::AcqRel)
            && let Some(manager) = self.manager.get().cloned()
        {
            tokio::spawn(async move { manager.shutdown_all().await });
        }
    }

    /// Remembers the runner that holds the session now (a re-identify starts a new one).
    fn remember(&self, ctx: &Context) {
        let mut runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        *runner = Some(ctx.shard.clone());
    }
}

#[serenity::async_trait]
impl EventHandler for Forwarder {
    async fn message(&self, ctx: Context, message: Message) {
        self.forward(&ctx, GatewayMsg::Created(Box::new(message)));
    }

    async fn ready(&self, ctx: Context, ready: Ready) {
        self.remember(&ctx);
        let session_id = ready.session_id;
        self.forward(&ctx, GatewayMsg::Ready { session_id });
    }

    async fn resume(&self, ctx: Context, _event: ResumedEvent) {
        self.remember(&ctx);
        self.forward(&ctx, GatewayMsg::Resumed);
    }
}
