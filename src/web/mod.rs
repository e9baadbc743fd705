//! The dashboard's HTTP server: a JSON API, live streams (server-sent events), Prometheus
//! metrics and the static pages, on `WEB_BIND:WEB_PORT` (see README, "HTTP API").
//!
//! ```text
//! GET  /api/status  /api/actors[/<path>]  /api/tasks[?status,repo,q,limit]  /api/tasks/<id>
//! GET  /api/queue  /api/groups  /metrics
//! GET  /api/events  /api/logs  /api/tasks/<id>/stream          (text/event-stream)
//! POST /api/tasks  /api/tasks/<id>/cancel  /api/tasks/<id>/retry
//! POST /api/actors/<path>/restart  /api/breakers/<path>
//! GET  /  /assets/*                                             (assets.rs)
//! ```
//!
//! The server is the `web` child of the root supervisor ([`WebServer`]). Its start function
//! binds the listener first, so a port in use is a start error that names WEB_BIND and
//! WEB_PORT; stopping the actor ends every event stream and shuts the server down gracefully.
//!
//! Three rules hold for every route:
//! - **Auth**: with `WEB_TOKEN` set, every request (pages included) needs
//!   `Authorization: Bearer <token>` or `?token=<token>` (an `EventSource` cannot send
//!   headers); anything else is a 401 JSON error. The token is compared in constant time.
//! - **Errors are JSON**: `{"error": "<what was wrong>"}` with a 4xx/5xx status, also for
//!   unknown routes, wrong methods and unreadable bodies ([`error`]).
//! - **No secrets**: every answer and stream passes through [`secrets::Secrets`], which
//!   replaces the chat tokens, `WEB_TOKEN` and the model credential wherever they appear
//!   (error texts can quote a request URL holding a bot token, an agent can print its env).

mod actions;
mod api;
pub mod assets;
mod auth;
mod body;
mod error;
mod filter;
mod metrics;
mod paths;
pub mod secrets;
pub mod sse;
pub mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::{Introspection, SupervisorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::Config;
use crate::store::Store;

/// Everything the routes read from; cheap to clone.
#[derive(Clone)]
pub struct WebContext {
    pub config: Arc<Config>,
    pub introspection: Introspection,
    pub store: Store,
    pub started: Instant,
    /// The root supervisor, through which actions reach any actor of the tree.
    pub root: Option<SupervisorRef>,
    /// The root's path (`root`), the prefix of every actor path.
    pub root_path: String,
    /// This server's own path (`root/web`): restarting it answers before it goes.
    pub own_path: String,
    /// The sandbox in one line, as the daemon logged it at start.
    pub sandbox: String,
    pub secrets: secrets::Secrets,
    pub streams: streams::Streams,
    /// The WhatsApp channel, when enabled: its phase and the pairing QR code while pairing.
    pub whatsapp: Option<crate::whatsapp::WhatsAppLink>,
}

/// All routes: auth first, then the API and the pages, with every rejection made JSON.
pub fn routes(ctx: WebContext) -> BoxedFilter<(Response,)> {
    let secrets = ctx.secrets.clone();
    let token = ctx.config.web_token.clone();
    let api = api::routes(ctx.clone())
        .or(actions::routes(ctx.clone()))
        .unify()
        .or(streams::routes(ctx.clone()))
        .unify()
        .or(metrics::routes(ctx))
        .unify()
        .boxed();
    auth::required(token)
        // The dashboard's pages (another module): `/` and `/assets/*`.
        .and(api.or(assets::routes()).unify())
        .recover(move |rejection| error::recover(rejection, secrets.clone()))
        .unify()
        .map(|reply: Response| reply)
        .boxed()
}

/// Serves `routes(ctx)` on `listener` (starting the event streams' pumps) until `shutdown`
/// resolves: then the event streams end and open requests are finished.
pub async fn serve(
    listener: TcpListener,
    ctx: WebContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let streams = ctx.streams.clone();
    streams.start(&ctx);
    let shutdown = async move {
        shutdown.await;
        // Event streams never end by themselves: end them, or the graceful shutdown waits.
        streams.close();
    };
    warp::serve(routes(ctx))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Binds `WEB_BIND:WEB_PORT`, with an error that says which settings to change.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!(
            "the dashboard cannot listen on {addr} (WEB_BIND:WEB_PORT): {e}; \
             set WEB_PORT to a free port or stop what uses it"
        )
    })
}

/// What the web actor starts with: the bound listener and the routes' context.
pub struct WebArgs {
    pub listener: TcpListener,
    pub ctx: WebContext,
}

/// The web server as an actor of the tree.
pub struct WebServer;

pub struct WebState {
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

/// How long a stopping server waits for open requests before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Actor for WebServer {
    type Msg = ();
    type State = WebState;
    type Arguments = WebArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: WebArgs,
    ) -> Result<WebState, ActorProcessingErr> {
        let (stop, mut stopped) = watch::channel(false);
        let addr = args.listener.local_addr()?;
        let ctx = args.ctx;
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let server = tokio::spawn(serve(args.listener, ctx, shutdown));
        tracing::info!("dashboard and API on http://{addr}/");
        Ok(WebState {
            stop,
            server: Some(server),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut WebState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.stop.send(true);
        if let Some(mut server) = state.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            // The listener is closed already; requests still open are cut off.
            server.abort();
        }
        Ok(())
    }
}

impl Drop for WebState {
    fn drop(&mut self) {
        // ractor skips `post_stop` when the actor is killed: never leave the port bound.
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
