//! The control socket: how `borg status` asks a running daemon what it is doing.
//!
//! The daemon listens on `DATA_DIR/borg.sock` (a Unix socket, so only local users with access
//! to the data directory can ask). A client connects and reads one JSON [`StatusReport`];
//! no request is needed. The socket is an actor in the tree like everything else, so it
//! stops in order and is restarted if its accept loop dies.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use supervisors::{ActorInfo, EventRecord, Introspection};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::store::Store;

/// The socket's file name inside `DATA_DIR`.
pub const SOCKET_NAME: &str = "borg.sock";

/// What a running daemon reports about itself.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub version: &'static str,
    pub pid: u32,
    pub uptime_s: u64,
    pub data_dir: PathBuf,
    pub actors: Vec<ActorInfo>,
    pub recent_events: Vec<EventRecord>,
    pub store: crate::store::StoreStatsSnapshot,
}

/// Everything the socket needs to answer.
#[derive(Clone)]
pub struct ControlArgs {
    pub data_dir: PathBuf,
    pub introspection: Introspection,
    pub store: Store,
    pub started: Instant,
}

/// The control socket actor.
pub struct ControlSocket;

pub struct ControlState {
    accept: JoinHandle<()>,
    path: PathBuf,
}

impl Actor for ControlSocket {
    type Msg = ();
    type State = ControlState;
    type Arguments = ControlArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: ControlArgs,
    ) -> Result<ControlState, ActorProcessingErr> {
        let path = args.data_dir.join(SOCKET_NAME);
        let listener = bind(&path).await?;
        let accept = tokio::spawn(accept_loop(listener, args));
        Ok(ControlState { accept, path })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        state.accept.abort();
        // Leaving the file would make the next `borg status` try a dead socket first.
        let _ = std::fs::remove_file(&state.path);
        Ok(())
    }
}

/// Binds the socket, replacing a stale file left by a daemon that was killed.
async fn bind(path: &Path) -> Result<UnixListener, ActorProcessingErr> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!("another borg daemon is answering on {}", path.display()).into());
        }
        std::fs::remove_file(path)?;
    }
    Ok(UnixListener::bind(path)?)
}

async fn accept_loop(listener: UnixListener, args: ControlArgs) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let report = report(&args);
        tokio::spawn(async move {
            match serde_json::to_vec(&report) {
                Ok(bytes) => {
                    // A client that hangs up early only loses its own answer.
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                }
                Err(e) => tracing::error!("status report does not serialize: {e}"),
            }
        });
    }
}

fn report(args: &ControlArgs) -> StatusReport {
    StatusReport {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        uptime_s: args.started.elapsed().as_secs(),
        data_dir: args.data_dir.clone(),
        actors: args.introspection.list(),
        recent_events: args.introspection.recent_events(),
        store: args.store.stats(),
    }
}

/// Asks a running daemon for its status; `None` if no daemon answers.
pub async fn query(data_dir: &Path) -> Option<serde_json::Value> {
    use tokio::io::AsyncReadExt;
    let mut stream = UnixStream::connect(data_dir.join(SOCKET_NAME)).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    serde_json::from_slice(&buf).ok()
}
