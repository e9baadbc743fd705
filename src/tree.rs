//! The daemon's supervision tree, drawn in one place. ARCHITECTURE.md shows the same tree.
//!
//! ```text
//! root (rest_for_one)
//! ├── store         owns the redb writer; started first, so it stops last
//! ├── agent-slots   the global MAX_CONCURRENT_AGENTS limit, shared by chat and pipeline
//! ├── chat          (rest_for_one) groups, router, transports: see `crate::chat`
//! ├── pipeline      (one_for_one) desk, repositories and their tasks: see `crate::pipeline`
//! ├── control       the control socket `borg status` talks to
//! └── web           the dashboard, HTTP API and metrics on WEB_BIND:WEB_PORT
//! ```
//!
//! rest_for_one because every child depends on the ones started before it (the store, the
//! slots); a child that fails takes down and restarts only what comes after it.

use std::time::{Duration, Instant};

use actors::slots::AgentSlots;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::{
    Backoff, ChildSpec, Intensity, Introspection, Shutdown, StartCtx, StartError, Strategy,
    SupervisorRef, SupervisorSpec,
};

use crate::chat::{ChatWiring, chat_spec};
use crate::config::Config;
use crate::control::{ControlArgs, ControlSocket};
use crate::pipeline::{PipelineWiring, pipeline_spec};
use crate::store::Store;
use crate::web;
use crate::wiring::SLOTS_NAME;

/// What the tree is built from.
pub struct TreeArgs {
    pub config: std::sync::Arc<Config>,
    pub store: Store,
    pub introspection: Introspection,
    pub started: Instant,
    /// Agent and test runners of the configured sandbox, shared by chat and pipeline.
    pub runners: crate::sandbox::Runners,
    /// The sandbox in one line, for `/status`.
    pub sandbox: String,
}

/// The root supervisor's spec.
pub fn root_spec(args: TreeArgs) -> SupervisorSpec {
    let store = args.store.clone();
    let whatsapp = crate::whatsapp::WhatsAppLink::new();
    let chat = ChatWiring {
        whatsapp: whatsapp.clone(),
        config: args.config.clone(),
        store: std::sync::Arc::new(args.store.clone()),
        introspection: args.introspection.clone(),
        started: args.started,
        runner: args.runners.agent.clone(),
        sandbox: args.sandbox.clone(),
    };
    let pipeline = PipelineWiring {
        config: args.config.clone(),
        store: std::sync::Arc::new(args.store.clone()),
        runner: args.runners.agent.clone(),
        tests: args.runners.test.clone(),
        // Self-update listens to releases of PIPELINE_REPO when it is borg's own source.
        on_primary_release: crate::self_update::enabled(&args.config).then(|| {
            std::sync::Arc::new(|commit: &str| crate::self_update::trigger(commit.to_owned()))
                as actors::pipeline::train::ReleaseHook
        }),
        gate: crate::pipeline::sandbox_gate(&args.config, &args.runners),
    };
    let pipeline_settings = crate::pipeline::settings(&args.config);
    let slots = args.config.max_concurrent_agents as usize;
    let control = ControlArgs {
        data_dir: args.config.data_dir.clone(),
        introspection: args.introspection.clone(),
        store: args.store.clone(),
        started: args.started,
    };
    let web = WebWiring {
        whatsapp: args.config.whatsapp_enabled.then_some(whatsapp),
        config: args.config.clone(),
        introspection: args.introspection,
        store: args.store,
        started: args.started,
        sandbox: args.sandbox,
    };
    SupervisorSpec {
        strategy: Strategy::RestForOne,
        // A little more forgiving than OTP's 1 in 5 s: the root failing takes the daemon down.
        intensity: Intensity {
            max_restarts: 3,
            period: Duration::from_secs(5),
        },
        children: vec![
            ChildSpec::actor("store", move || (StoreKeeper, store.clone()))
                .kind("store")
                // Closing the store waits for the last group commit to be durable.
                .shutdown(Shutdown::Infinity),
            ChildSpec::new("agent-slots", move |ctx: StartCtx| async move {
                ctx.spawn_named(Some(SLOTS_NAME.into()), AgentSlots, slots)
                    .await
                    .map(Some)
            })
            .kind("slots"),
            ChildSpec::supervisor("chat", chat_spec(chat)),
            ChildSpec::supervisor("pipeline", pipeline_spec(pipeline, pipeline_settings)),
            ChildSpec::actor("control", move || (ControlSocket, control.clone()))
                .kind("control")
                .backoff(Backoff::default()),
            web_child(web),
        ],
    }
}

/// What the web server is built from.
#[derive(Clone)]
struct WebWiring {
    whatsapp: Option<crate::whatsapp::WhatsAppLink>,
    config: std::sync::Arc<Config>,
    introspection: Introspection,
    store: Store,
    started: Instant,
    sandbox: String,
}

/// The `web` child: binds `WEB_BIND:WEB_PORT` in its start function, so a port in use is a
/// start error naming the settings (and borg refuses to start), then serves until stopped.
fn web_child(w: WebWiring) -> ChildSpec {
    ChildSpec::new("web", move |ctx: StartCtx| {
        let w = w.clone();
        async move {
            let listener = web::bind(w.config.web_addr()).await.map_err(StartError)?;
            let root_path = ctx
                .path
                .rsplit_once('/')
                .map_or_else(String::new, |(parent, _)| parent.to_owned());
            let web = web::WebContext {
                whatsapp: w.whatsapp,
                secrets: web::secrets::Secrets::from_config(&w.config),
                config: w.config,
                introspection: w.introspection,
                store: w.store,
                started: w.started,
                root: Some(SupervisorRef::new(ctx.supervisor.clone().into())),
                root_path,
                own_path: ctx.path.clone(),
                sandbox: w.sandbox,
                streams: web::streams::Streams::default(),
            };
            let args = web::WebArgs { listener, ctx: web };
            ctx.spawn(web::WebServer, args).await.map(Some)
        }
    })
    .kind("web")
    .backoff(Backoff::default())
}

/// Keeps the store open for as long as the tree runs. As the first child it is stopped last,
/// after every actor that could still write a snapshot; stopping it flushes and closes the
/// database.
pub struct StoreKeeper;

impl Actor for StoreKeeper {
    type Msg = ();
    type State = Store;
    type Arguments = Store;

    async fn pre_start(&self, _: ActorRef<()>, store: Store) -> Result<Store, ActorProcessingErr> {
        Ok(store)
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        store: &mut Store,
    ) -> Result<(), ActorProcessingErr> {
        store.close().await;
        Ok(())
    }
}
