//! Server-sent events without back-pressure on the daemon.
//!
//! A source (the lifecycle events, the log feed, a task's output) is a `broadcast` that
//! never waits for readers. Between it and each HTTP client sits a bounded queue of rendered
//! frames ([`CLIENT_QUEUE`]): a pump or forwarder moves frames from the source into the
//! queues with `try_send`, and the client's body stream ([`ClientStream`]) takes them out as
//! fast as the socket accepts them. A client whose queue is full is *lagging*: it is dropped
//! at once (its queue's sender goes), and its stream ends with an `event: lagged` after the
//! frames it still holds, so a page knows to reload rather than show a silent gap. A client
//! that never reads at all costs a full queue and hyper's write buffer, never a wait.
//!
//! Frames are rendered once per event and shared between clients (`Bytes` clones), so fan
//! out to many clients is a reference count per client, not a serialisation.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;
use warp::http::{HeaderValue, StatusCode, header};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use super::error::ApiError;

/// Frames one client may have waiting before it counts as lagging.
pub const CLIENT_QUEUE: usize = 256;
/// Most event-stream clients at once; more get 503.
pub const MAX_CLIENTS: u64 = 256;
/// How often an idle stream gets a comment, so proxies and browsers keep it open.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

static CLIENTS: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Event-stream clients connected now.
pub fn clients() -> u64 {
    CLIENTS.load(Ordering::Relaxed)
}

/// Clients dropped for lagging since the daemon started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// One rendered frame. `seq` orders frames of one source (0 for keep-alives), so a client
/// that got a replay can skip what the replay already held.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    pub bytes: Bytes,
}

/// `id: <seq>`, `event: <name>`, `data: <one line>`: `data` must hold no newline (compact
/// JSON does not).
pub fn frame(seq: u64, event: &str, data: &str) -> Frame {
    Frame {
        seq,
        bytes: Bytes::from(format!("id: {seq}\nevent: {event}\ndata: {data}\n\n")),
    }
}

fn keep_alive() -> Frame {
    Frame {
        seq: 0,
        bytes: Bytes::from_static(b": keep-alive\n\n"),
    }
}

/// The sending half of one client's queue.
pub struct Client {
    tx: mpsc::Sender<Frame>,
    lagged: Arc<AtomicBool>,
}

impl Client {
    /// Queues `frame`; `false` when the client is gone or lagging (then it is marked, and
    /// the caller drops it).
    pub fn deliver(&self, frame: Frame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lag();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Marks the client as lagging: its stream ends with `event: lagged` once this sender
    /// is dropped.
    pub fn lag(&self) {
        if !self.lagged.swap(true, Ordering::Relaxed) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A new client: its sending half and its body stream, which starts with `replay`; queued
/// frames with a `seq` up to `replayed` are skipped (the replay had them). Refused when
/// [`MAX_CLIENTS`] are connected.
pub fn client(replay: Vec<Bytes>, replayed: u64) -> Result<(Client, ClientStream), ApiError> {
    if CLIENTS.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::unavailable(format!(
            "{MAX_CLIENTS} event streams are open already; close one"
        )));
    }
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let lagged = Arc::new(AtomicBool::new(false));
    let stream = ClientStream {
        replay: replay.into(),
        rx,
        replayed,
        lagged: lagged.clone(),
        ended: false,
    };
    Ok((Client { tx, lagged }, stream))
}

/// One client's response body.
pub struct ClientStream {
    replay: VecDeque<Bytes>,
    rx: mpsc::Receiver<Frame>,
    replayed: u64,
    lagged: Arc<AtomicBool>,
    ended: bool,
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stream for ClientStream {
    type Item = Result<Bytes, Infallible>;

    /// Everything queued goes out at once (up to [`COALESCE_BYTES`]): a client that fell a
    /// little behind catches up with one write instead of one per frame.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(bytes) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(bytes)));
        }
        let mut batch = Batch::default();
        while !self.ended && batch.len() < COALESCE_BYTES {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(frame)) if frame.seq != 0 && frame.seq <= self.replayed => {}
                Poll::Ready(Some(frame)) => batch.push(frame.bytes),
                Poll::Ready(None) => {
                    self.ended = true;
                    // The sender went: the stream closed (shutdown), or the client lagged.
                    if self.lagged.load(Ordering::Relaxed) {
                        let lagged = frame(
                            0,
                            "lagged",
                            r#"{"reason":"this client fell behind and was dropped; reconnect"}"#,
                        );
                        batch.push(lagged.bytes);
                    }
                }
                Poll::Pending => break,
            }
        }
        match batch.into_bytes() {
            Some(bytes) => Poll::Ready(Some(Ok(bytes))),
            None if self.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Most bytes one poll of a client's stream hands to hyper.
const COALESCE_BYTES: usize = 64 * 1024;

/// Frames joined into one chunk; a single frame is passed on without a copy.
#[derive(Default)]
struct Batch {
    one: Option<Bytes>,
    joined: Vec<u8>,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        match self.one.take() {
            None if self.joined.is_empty() => self.one = Some(bytes),
            None => self.joined.extend_from_slice(&bytes),
            Some(first) => {
                self.joined.extend_from_slice(&first);
                self.joined.extend_from_slice(&bytes);
            }
        }
    }

    fn len(&self) -> usize {
        self.one.as_ref().map_or(self.joined.len(), Bytes::len)
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self.one {
            Some(one) => Some(one),
            None if self.joined.is_empty() => None,
            None => Some(Bytes::from(self.joined)),
        }
    }
}

/// The streaming response: `text/event-stream`, never cached, and the connection closed when
/// the stream ends (a dropped client's socket is not kept for another request).
pub fn response(stream: ClientStream) -> Response {
    let mut response = warp::reply::stream(stream).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    // nginx and friends buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Fans frames of one source out to many clients.
#[derive(Clone, Default)]
pub struct Fanout {
    inner: Arc<FanoutInner>,
}

#[derive(Default)]
struct FanoutInner {
    clients: Mutex<Vec<Client>>,
    closed: AtomicBool,
}

impl Fanout {
    fn clients(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.inner.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a client. `replay` runs after the client is registered, so that every frame
    /// sent after the replay was taken reaches the client (the ones before it are skipped
    /// by their `seq`); it returns the replay's frames and the last `seq` they cover.
    pub fn subscribe(
        &self,
        replay: impl FnOnce() -> (Vec<Bytes>, u64),
    ) -> Result<ClientStream, ApiError> {
        let mut clients = self.clients();
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(ApiError::unavailable("the server is stopping"));
        }
        let (frames, replayed) = replay();
        let (client, stream) = client(frames, replayed)?;
        clients.push(client);
        Ok(stream)
    }

    /// Queues `frame` for every client, dropping those that lag or left.
    pub fn send(&self, frame: &Frame) {
        self.clients().retain(|c| c.deliver(frame.clone()));
    }

    /// The source skipped frames (its own reader lagged): every client missed them, so
    /// every client is told and dropped.
    pub fn lag_all(&self) {
        for client in self.clients().drain(..) {
            client.lag();
        }
    }

    /// Ends every client's stream (after the frames it holds) and refuses new ones.
    pub fn close(&self) {
        let mut clients = self.clients();
        self.inner.closed.store(true, Ordering::Relaxed);
        clients.clear();
    }

    /// Sends a keep-alive comment to every client.
    pub fn keep_alive(&self) {
        self.send(&keep_alive());
    }

    pub fn len(&self) -> usize {
        self.clients().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A keep-alive frame, for forwarders that serve a single client.
pub fn keep_alive_frame() -> Frame {
    keep_alive()
}
