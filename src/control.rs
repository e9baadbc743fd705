//! The control socket: how `borg status` asks a running daemon what it is doing.
//!
//! The daemon listens on `DATA_DIR/borg.sock` (a Unix socket, so only local users with access
//! to the data directory can ask). A client connects, writes one JSON request on one line
//! (`{"cmd":"status"}`, `{"cmd":"tasks"}`, `{"cmd":"task","id":3}`,
//! `{"cmd":"task_add","repo":..,"title":..,"description":..}`) and reads one JSON answer
//! (see [`requests`]). The socket is an actor in the tree like everything else, so it
//! stops in order and is restarted if its accept loop dies.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use supervisors::{ActorInfo, EventRecord, Introspection};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::store::Store;

mod requests;

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
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: pause rather than spin on the error.
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let args = args.clone();
        // A slow or silent client only holds up its own answer.
        tokio::spawn(async move { serve(stream, args).await });
    }
}

/// Reads one request line, answers with one JSON document, closes.
async fn serve(stream: UnixStream, args: ControlArgs) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES);
    let read = tokio::time::timeout(REQUEST_WAIT, reader.read_line(&mut line)).await;
    let answer = match read {
        Ok(Ok(_)) => requests::answer(line.trim(), &args).await,
        Ok(Err(e)) => requests::error(format!("the request could not be read: {e}")),
        Err(_) => requests::error("no request arrived within 5 s".into()),
    };
    match serde_json::to_vec(&answer) {
        Ok(bytes) => {
            let _ = write.write_all(&bytes).await;
            let _ = write.shutdown().await;
        }
        Err(e) => tracing::error!("control answer does not serialize: {e}"),
    }
}

const MAX_REQUEST_BYTES: u64 = 256 * 1024;
const REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn report(args: &ControlArgs) -> StatusReport {
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
    request(data_dir, &serde_json::json!({"cmd": "status"})).await
}

/// Sends one request to a running daemon; `None` if no daemon answers.
pub async fn request(data_dir: &Path, request: &serde_json::Value) -> Option<serde_json::Value> {
    use tokio::io::AsyncReadExt;
    let mut stream = UnixStream::connect(data_dir.join(SOCKET_NAME)).await.ok()?;
    let mut line = serde_json::to_vec(request).ok()?;
    line.push(b'\n');
    stream.write_all(&line).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    serde_json::from_slice(&buf).ok()
}
