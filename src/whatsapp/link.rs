//! [`WhatsAppLink`]: what the transport (sending) and the bridge actor (receiving) share,
//! across every restart of the bridge.
//!
//! The transport is made once, when the chat subtree is wired; the bridge process comes and
//! goes with its actor. The link holds the way to the bridge running now (a command queue
//! that the actor's writer task drains into the process's stdin), the requests waiting for
//! their `sent` answer, and the pairing status the dashboard will show.
//!
//! Request ids come from one counter for the link's whole life, so an answer can never be
//! matched to a request of another incarnation. When a bridge goes away, every request still
//! waiting fails at once rather than running into its timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actors::chat::TransportError;
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::BridgeCommand;

/// Where the bridge is in its life, for `/status` and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No bridge runs (not started yet, or between restarts).
    Stopped,
    /// npm is installing the bridge's packages.
    Installing,
    /// The process runs and has not connected yet.
    Starting,
    /// Waiting for the QR code to be scanned.
    Pairing,
    /// Logged in: messages flow.
    Connected,
}

/// A pairing code, as the bridge sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingQr {
    /// The text to encode as a QR code (what the dashboard will draw).
    pub code: String,
    /// The same, drawn for a terminal, if the bridge could.
    pub terminal: Option<String>,
    /// When it arrived, ms since the Unix epoch; WhatsApp renews it every 20 s or so.
    pub at_ms: u64,
}

/// The WhatsApp channel's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppStatus {
    pub phase: Phase,
    /// The latest pairing code; cleared once connected.
    pub qr: Option<PairingQr>,
    /// The account's jid once connected.
    pub me: Option<String>,
    /// Why the last bridge stopped or failed; cleared once one is connected.
    pub last_error: Option<String>,
}

/// How many commands may wait for the writer: a bridge that reads none for this long is
/// stuck, and callers get an error instead of a queue that grows without end.
const QUEUE_CAPACITY: usize = 256;

type Reply = oneshot::Sender<Result<String, TransportError>>;

struct Attached {
    /// Which bridge incarnation this is, so a stale one cannot detach its successor.
    incarnation: u64,
    commands: mpsc::Sender<BridgeCommand>,
}

struct Inner {
    next_req: AtomicU64,
    next_incarnation: AtomicU64,
    attached: Mutex<Option<Attached>>,
    pending: Mutex<HashMap<u64, Reply>>,
    status: watch::Sender<WhatsAppStatus>,
}

/// Shared between [`WhatsAppTransport`](super::WhatsAppTransport) and the bridge actor.
/// Cheap to clone.
#[derive(Clone)]
pub struct WhatsAppLink {
    inner: Arc<Inner>,
}

impl Default for WhatsAppLink {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data under these locks stays consistent at every step; keep using it after a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WhatsAppLink {
    pub fn new() -> Self {
        let (status, _) = watch::channel(WhatsAppStatus {
            phase: Phase::Stopped,
            qr: None,
            me: None,
            last_error: None,
        });
        WhatsAppLink {
            inner: Arc::new(Inner {
                next_req: AtomicU64::new(1),
                next_incarnation: AtomicU64::new(1),
                attached: Mutex::new(None),
                pending: Mutex::new(HashMap::new()),
                status,
            }),
        }
    }

    /// The channel's status now.
    pub fn status(&self) -> WhatsAppStatus {
        self.inner.status.borrow().clone()
    }

    /// The latest pairing QR code while one is waiting to be scanned (for the dashboard).
    pub fn qr(&self) -> Option<PairingQr> {
        self.inner.status.borrow().qr.clone()
    }

    /// Every change of the status, for a page that shows it live.
    pub fn subscribe(&self) -> watch::Receiver<WhatsAppStatus> {
        self.inner.status.subscribe()
    }

    pub(crate) fn update_status(&self, change: impl FnOnce(&mut WhatsAppStatus)) {
        self.inner.status.send_modify(change);
    }

    /// Makes `commands` the way to the bridge; returns the incarnation for [`Self::detach`].
    pub(crate) fn attach(&self, commands: mpsc::Sender<BridgeCommand>) -> u64 {
        let incarnation = self.inner.next_incarnation.fetch_add(1, Ordering::Relaxed);
        *lock(&self.inner.attached) = Some(Attached {
            incarnation,
            commands,
        });
        incarnation
    }

    /// The bridge `incarnation` is gone: forget it and fail every request still waiting.
    /// Does nothing if a newer incarnation is attached already.
    pub(crate) fn detach(&self, incarnation: u64, why: &str) {
        {
            let mut attached = lock(&self.inner.attached);
            if attached.as_ref().map(|a| a.incarnation) != Some(incarnation) {
                return;
            }
            *attached = None;
        }
        let waiting: Vec<Reply> = lock(&self.inner.pending).drain().map(|(_, r)| r).collect();
        for reply in waiting {
            // The caller may have timed out meanwhile.
            let _ = reply.send(Err(TransportError::Unavailable(format!(
                "the WhatsApp bridge stopped before confirming the message ({why})"
            ))));
        }
        self.update_status(|s| {
            s.phase = Phase::Stopped;
            s.qr = None;
        });
    }

    /// Answers request `req` (from `sent` or `error`); false if nobody waits for it (it timed
    /// out, or the bridge made the id up).
    pub(crate) fn resolve(&self, req: u64, result: Result<String, TransportError>) -> bool {
        match lock(&self.inner.pending).remove(&req) {
            Some(reply) => reply.send(result).is_ok(),
            None => false,
        }
    }

    /// Queues a command that expects an answer; returns the receiver of that answer.
    pub(crate) fn request(
        &self,
        make: impl FnOnce(u64) -> BridgeCommand,
    ) -> Result<(u64, oneshot::Receiver<Result<String, TransportError>>), TransportError> {
        let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        // Registered before it is queued: the answer may come back before `push` returns.
        lock(&self.inner.pending).insert(req, tx);
        if let Err(e) = self.push(make(req)) {
            lock(&self.inner.pending).remove(&req);
            return Err(e);
        }
        Ok((req, rx))
    }

    /// Forgets request `req` (its caller gave up).
    pub(crate) fn abandon(&self, req: u64) {
        lock(&self.inner.pending).remove(&req);
    }

    /// Queues a command for the bridge running now.
    pub(crate) fn push(&self, command: BridgeCommand) -> Result<(), TransportError> {
        let attached = lock(&self.inner.attached);
        let Some(attached) = attached.as_ref() else {
            return Err(TransportError::Unavailable(self.not_running()));
        };
        attached.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::Unavailable(format!(
                "the WhatsApp bridge is not keeping up ({QUEUE_CAPACITY} commands waiting)"
            )),
            mpsc::error::TrySendError::Closed(_) => TransportError::Unavailable(self.not_running()),
        })
    }

    fn not_running(&self) -> String {
        match self.status().last_error {
            Some(why) => format!("the WhatsApp bridge is not running: {why}"),
            None => "the WhatsApp bridge is not running".into(),
        }
    }

    /// Requests waiting for an answer (for tests and introspection).
    pub fn pending_requests(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

/// The capacity of the queue between the link and a bridge's stdin writer.
pub(crate) fn command_queue() -> (mpsc::Sender<BridgeCommand>, mpsc::Receiver<BridgeCommand>) {
    mpsc::channel(QUEUE_CAPACITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detached_bridge_fails_the_waiting_requests_at_once() {
        let link = WhatsAppLink::new();
        let (tx, mut rx) = command_queue();
        let incarnation = link.attach(tx);
        let (req, answer) = link
            .request(|req| BridgeCommand::Typing {
                chat: format!("{req}"),
            })
            .unwrap();
        assert!(rx.recv().await.is_some());
        assert_eq!(link.pending_requests(), 1);
        link.detach(incarnation, "it crashed");
        let err = answer.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("it crashed"), "{err}");
        assert!(!link.resolve(req, Ok("late".into())));
        assert!(link.push(BridgeCommand::Shutdown).is_err());
    }

    #[test]
    fn a_stale_incarnation_cannot_detach_its_successor() {
        let link = WhatsAppLink::new();
        let (old, _rx_old) = command_queue();
        let first = link.attach(old);
        let (new, _rx_new) = command_queue();
        let _second = link.attach(new);
        link.detach(first, "old one stopped");
        assert!(link.push(BridgeCommand::Shutdown).is_ok());
    }
}
