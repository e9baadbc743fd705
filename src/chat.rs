//! The chat subtree, wired from the configuration:
//!
//! ```text
//! chat (rest_for_one)
//! ├── groups               dynamic supervisor: one `group:<chat>` per registered chat
//! ├── router               commands, registration, forwarding to groups
//! ├── transport:telegram   long-polls the Bot API (when TELEGRAM_BOT_TOKEN is set)
//! ├── transport:discord    the gateway connection (when DISCORD_ENABLED and DISCORD_TOKEN)
//! └── transport:whatsapp   the WhatsApp bridge process (when WHATSAPP_ENABLED)
//! ```
//!
//! rest_for_one because each child uses the ones before it: if `groups` restarts (all group
//! actors with it), the router restarts and starts them again from its book; if the router
//! restarts, the transports reconnect to the new one.
//!
//! Actors find their siblings by registered name, so a restarted sibling is found again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::agent::AgentRunner;
use actors::chat::group::{ChatSettings, GroupDeps};
use actors::chat::router::{Router, RouterArgs, RouterMsg, RouterSettings};
use actors::chat::{ChatId, ChatTransport, InboundSink, IncomingMessage, Platform, Taken};
use actors::slots::SlotsMsg;
use ractor::ActorRef;
use supervisors::snapshot::SnapshotStore;
use supervisors::{
    Backoff, BreakerPolicy, ChildSpec, Intensity, Introspection, StartCtx, StartError, Strategy,
    SupervisorRef, SupervisorSpec,
};

use crate::config::Config;
use crate::discord::{DiscordConfig, DiscordGateway, DiscordTransport, GatewayArgs};
use crate::telegram::{PollerArgs, TelegramConfig, TelegramPoller, TelegramTransport};
use crate::whatsapp::{
    BridgeArgs, WhatsAppBridge, WhatsAppConfig, WhatsAppLink, WhatsAppTransport,
};
pub use crate::wiring::{ROUTER_NAME, SLOTS_NAME};

const GROUPS_NAME: &str = "borg:chat:groups";

/// What the chat subtree is built from.
#[derive(Clone)]
pub struct ChatWiring {
    pub config: Arc<Config>,
    pub store: Arc<dyn SnapshotStore>,
    pub introspection: Introspection,
    pub started: Instant,
    /// Runs the chat's agents: in the configured sandbox (`AGENT_SANDBOX`), like the
    /// pipeline's.
    pub runner: Arc<dyn AgentRunner>,
    /// The sandbox, as `/status` shows it.
    pub sandbox: String,
    /// The WhatsApp channel's shared state (used when `WHATSAPP_ENABLED`); the dashboard reads
    /// its status and pairing QR code from the same link.
    pub whatsapp: WhatsAppLink,
}

/// The chat supervisor's spec.
pub fn chat_spec(w: ChatWiring) -> SupervisorSpec {
    let mut transports: HashMap<Platform, Arc<dyn ChatTransport>> = HashMap::new();
    let telegram = w
        .config
        .telegram_bot_token
        .as_ref()
        .map(|token| TelegramConfig {
            token: token.clone(),
            api_url: w.config.telegram_api_url.clone(),
        });
    if let Some(telegram) = &telegram {
        match TelegramTransport::new(telegram) {
            Ok(transport) => {
                transports.insert(Platform::Telegram, Arc::new(transport));
            }
            Err(e) => tracing::error!("Telegram is off: {e}"),
        }
    }
    let discord = w
        .config
        .discord_token
        .as_ref()
        .filter(|_| w.config.discord_enabled)
        .map(|token| DiscordConfig {
            token: token.clone(),
            api_url: w.config.discord_api_url.clone(),
            gateway_url: w.config.discord_gateway_url.clone(),
        });
    if let Some(discord) = &discord {
        match DiscordTransport::new(discord) {
            Ok(transport) => {
                transports.insert(Platform::Discord, Arc::new(transport));
            }
            Err(e) => tracing::error!("Discord is off: {e}"),
        }
    }
    let whatsapp = w
        .config
        .whatsapp_enabled
        .then(|| WhatsAppConfig::from_settings(&w.config))
        .and_then(|config| {
            config
                .inspect_err(|e| tracing::error!("WhatsApp is off: {e}"))
                .ok()
        })
        .map(|config| (config, w.whatsapp.clone()));
    if let Some((config, link)) = &whatsapp {
        let transport = WhatsAppTransport::new(link.clone(), config.send_timeout);
        transports.insert(Platform::WhatsApp, Arc::new(transport));
    }
    let mut children = vec![
        crate::wiring::dynamic_supervisor("groups", GROUPS_NAME.into()),
        router_spec(w.clone(), transports.clone()),
    ];
    if let Some(telegram) = telegram.filter(|_| transports.contains_key(&Platform::Telegram)) {
        let args = PollerArgs::new(telegram, w.store.clone(), router_sink());
        children.push(
            TelegramPoller::child_spec(args)
                .backoff(Backoff {
                    initial: Duration::from_secs(1),
                    ..Backoff::default()
                })
                .breaker(BreakerPolicy::default()),
        );
    }
    if let Some(discord) = discord.filter(|_| transports.contains_key(&Platform::Discord)) {
        children.push(
            DiscordGateway::child_spec(GatewayArgs::new(discord, router_sink()))
                // Every restart logs in again, and Discord allows 1,000 logins a day.
                .backoff(Backoff {
                    initial: Duration::from_secs(5),
                    ..Backoff::default()
                })
                .breaker(BreakerPolicy::default()),
        );
    }
    if let Some((config, link)) = whatsapp {
        children.push(
            WhatsAppBridge::child_spec(BridgeArgs {
                config,
                link,
                sink: router_sink(),
            })
            // Every restart starts Node and logs in to WhatsApp again.
            .backoff(Backoff {
                initial: Duration::from_secs(2),
                ..Backoff::default()
            })
            .breaker(BreakerPolicy::default()),
        );
    }
    SupervisorSpec {
        strategy: Strategy::RestForOne,
        intensity: Intensity {
            max_restarts: 5,
            period: Duration::from_secs(10),
        },
        children,
    }
}

fn router_spec(w: ChatWiring, transports: HashMap<Platform, Arc<dyn ChatTransport>>) -> ChildSpec {
    let runner = w.runner.clone();
    ChildSpec::new("router", move |ctx: StartCtx| {
        let (w, transports, runner) = (w.clone(), transports.clone(), runner.clone());
        async move {
            let slots = ractor::registry::where_is(SLOTS_NAME)
                .ok_or_else(|| StartError("agent slots are not running".into()))?;
            let groups = ractor::registry::where_is(GROUPS_NAME)
                .ok_or_else(|| StartError("the groups supervisor is not running".into()))?;
            let c = &w.config;
            let any_transport = transports.values().next().cloned();
            let Some(transport) = any_transport else {
                tracing::info!("no chat platform configured; the router waits for none");
                return Ok(None);
            };
            let args = RouterArgs {
                settings: RouterSettings {
                    version: env!("CARGO_PKG_VERSION").into(),
                    started: w.started,
                    admin_chat: c.pipeline_admin_chat.clone().map(ChatId),
                    admin_users: c.admin_users.clone(),
                    pipeline_summary: pipeline_summary(c),
                    sandbox: w.sandbox.clone(),
                },
                transports,
                group_deps: GroupDeps {
                    settings: Arc::new(chat_settings(c)),
                    transport,
                    runner,
                    slots: ActorRef::<SlotsMsg>::from(slots),
                    store: w.store.clone(),
                },
                groups: SupervisorRef::new(groups.into()),
                store: w.store.clone(),
                introspection: w.introspection.clone(),
            };
            ctx.spawn_named(Some(ROUTER_NAME.into()), Router, args)
                .await
                .map(Some)
        }
    })
    .kind("router")
}

/// Delivers what transports receive to whichever router is running now. The receipt is
/// unkept at once when no router runs (its `Taken` is dropped with the failed cast).
fn router_sink() -> InboundSink {
    Arc::new(|msg: IncomingMessage| {
        let (taken, receipt) = Taken::pair();
        match ractor::registry::where_is(ROUTER_NAME) {
            Some(cell) => {
                let router: ActorRef<RouterMsg> = cell.into();
                if router.cast(RouterMsg::Incoming(msg, taken)).is_err() {
                    tracing::warn!("chat router is stopping; a message was not taken in");
                }
            }
            None => tracing::warn!("chat router is not running; a message was not taken in"),
        }
        receipt
    })
}

fn chat_settings(c: &Config) -> ChatSettings {
    ChatSettings {
        assistant_name: c.assistant_name.clone(),
        model: c.claude_model.clone(),
        collection_window: c.collection_window(),
        cooldown: c.cooldown(),
        rate_limit_per_minute: c.rate_limit_per_minute,
        rate_window: Duration::from_secs(60),
        idle_timeout: c.agent_idle_timeout(),
        hard_timeout: c.agent_timeout(),
        sessions_dir: c.data_dir.join("sessions"),
        system_prompt: None,
    }
}

fn pipeline_summary(c: &Config) -> String {
    let repo = c
        .pipeline_repo
        .as_ref()
        .map_or("(none: set PIPELINE_REPO)".to_owned(), |p| {
            p.display().to_string()
        });
    format!(
        "Pipeline\nRepository: {repo}\nWatched: {}\nTest command: {}\nRelease every {} min\nModel: {}\nContinuous mode: {}",
        c.watched_repos.len(),
        c.pipeline_test_cmd,
        c.release_interval_mins,
        c.claude_model,
        if c.continuous_mode { "on" } else { "off" }
    )
}
