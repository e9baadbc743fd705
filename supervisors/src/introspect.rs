//! Introspection: a registry of every supervised actor and a stream of lifecycle events.
//!
//! ractor has no way to list actors or read a mailbox's depth. Supervisors fill this registry
//! as they start, restart, park and stop children; the [`Instrumented`](crate::Instrumented)
//! wrapper counts handled messages and [`Handle`](crate::Handle) counts sent ones, so the
//! difference is the mailbox depth. The hot path touches only the atomics in [`ActorStats`];
//! the registry's lock is taken on lifecycle changes, which are rare.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::breaker::BreakerState;
use crate::clock::now_ms;

/// Per-incarnation counters, shared between an actor, its handles and the registry.
#[derive(Debug, Default)]
pub struct ActorStats {
    /// Written by senders and by the actor on different cores: each counter gets its own
    /// cache line, or every message would bounce one line between them (~7 % throughput).
    sent: CacheLine<AtomicU64>,
    handled: CacheLine<AtomicU64>,
    /// 0 = never snapshotted.
    last_snapshot_ms: AtomicU64,
}

/// Aligns its content to a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl ActorStats {
    /// Counts a message put into the mailbox through a [`Handle`](crate::Handle).
    pub fn record_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a message taken out of the mailbox by the actor.
    pub fn record_handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
    /// Records the wall-clock time of the latest durable snapshot.
    pub fn record_snapshot(&self, at_ms: u64) {
        self.last_snapshot_ms.fetch_max(at_ms, Ordering::Relaxed);
    }
    /// Messages sent through handles and not yet handled.
    pub fn mailbox_depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(handled)
    }
    /// Messages handled by this incarnation.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
    /// Milliseconds since the last snapshot, if there was one.
    pub fn snapshot_age_ms(&self) -> Option<u64> {
        match self.last_snapshot_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(now_ms().saturating_sub(at)),
        }
    }
}

/// Where a supervised actor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running and serving its mailbox.
    Running,
    /// Failed; a restart is pending (possibly waiting out a backoff).
    Restarting,
    /// Failed and parked by an open circuit breaker.
    Parked,
    /// Exited and not restarted (transient exited normally, or terminated on request).
    Stopped,
}

/// A point-in-time copy of one registry entry, for dashboards and `borg status`.
#[derive(Debug, Clone, Serialize)]
pub struct ActorInfo {
    /// Position in the tree, `root/chat/groups/group:42`.
    pub path: String,
    /// What the actor is (`supervisor`, `group`, `task`, ...).
    pub kind: String,
    pub status: Status,
    pub mailbox_depth: u64,
    /// Messages handled by the current incarnation.
    pub handled: u64,
    /// Restarts since the entry was created.
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub breaker: Option<BreakerState>,
    pub snapshot_age_ms: Option<u64>,
    /// Wall-clock start of the current incarnation.
    pub started_at_ms: u64,
}

/// A lifecycle change worth telling the dashboard, the metrics and the logs about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        path: String,
        kind: String,
    },
    Failed {
        path: String,
        error: String,
    },
    Restarted {
        path: String,
        restarts: u32,
    },
    Stopped {
        path: String,
        reason: String,
    },
    /// A supervisor exceeded its restart intensity and gave up.
    Escalated {
        path: String,
        reason: String,
    },
    Breaker {
        path: String,
        state: BreakerState,
    },
}

/// An [`Event`] with its sequence number and time.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub seq: u64,
    pub at_ms: u64,
    pub event: Event,
}

struct Node {
    kind: String,
    status: Status,
    stats: Arc<ActorStats>,
    restarts: u32,
    last_failure: Option<String>,
    breaker: Option<BreakerState>,
    started_at_ms: u64,
}

struct Inner {
    nodes: Mutex<BTreeMap<String, Node>>,
    recent: Mutex<VecDeque<EventRecord>>,
    events: broadcast::Sender<EventRecord>,
    seq: AtomicU64,
}

/// How many recent events [`Introspection::recent_events`] keeps for late readers.
const RECENT_EVENTS: usize = 256;

/// The registry and event bus, cheap to clone. One per supervision tree.
#[derive(Clone)]
pub struct Introspection {
    inner: Arc<Inner>,
}

impl Default for Introspection {
    fn default() -> Self {
        Self::new()
    }
}

fn info(path: &str, n: &Node) -> ActorInfo {
    ActorInfo {
        path: path.to_owned(),
        kind: n.kind.clone(),
        status: n.status,
        mailbox_depth: n.stats.mailbox_depth(),
        handled: n.stats.handled(),
        restarts: n.restarts,
        last_failure: n.last_failure.clone(),
        breaker: n.breaker,
        snapshot_age_ms: n.stats.snapshot_age_ms(),
        started_at_ms: n.started_at_ms,
    }
}

impl Introspection {
    /// An empty registry.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                nodes: Mutex::new(BTreeMap::new()),
                recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
                events,
                seq: AtomicU64::new(0),
            }),
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Node>> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a new incarnation of `path` is running with the counters `stats`.
    /// The entry's restart count and breaker state survive from earlier incarnations.
    pub fn started(&self, path: &str, kind: &str, stats: Arc<ActorStats>) {
        {
            let mut nodes = self.nodes();
            let node = nodes.entry(path.to_owned()).or_insert_with(|| Node {
                kind: kind.to_owned(),
                status: Status::Running,
                stats: stats.clone(),
                restarts: 0,
                last_failure: None,
                breaker: None,
                started_at_ms: 0,
            });
            node.status = Status::Running;
            node.stats = stats.clone();
            node.started_at_ms = now_ms();
        }
        self.emit(Event::Started {
            path: path.to_owned(),
            kind: kind.to_owned(),
        });
    }

    /// Marks `path` as failed with `error` and in `status` (restarting, parked or stopped).
    pub fn failed(&self, path: &str, error: &str, status: Status) {
        self.update(path, |n| {
            n.status = status;
            n.last_failure = Some(error.to_owned());
        });
        self.emit(Event::Failed {
            path: path.to_owned(),
            error: error.to_owned(),
        });
    }

    /// Counts a restart of `path`.
    pub fn restarted(&self, path: &str) {
        let mut restarts = 0;
        self.update(path, |n| {
            n.restarts += 1;
            restarts = n.restarts;
        });
        self.emit(Event::Restarted {
            path: path.to_owned(),
            restarts,
        });
    }

    /// Sets the status of `path` without an event (e.g. restarting during a group restart).
    pub fn set_status(&self, path: &str, status: Status) {
        self.update(path, |n| n.status = status);
    }

    /// Records a breaker transition of `path`.
    pub fn breaker(&self, path: &str, state: BreakerState) {
        self.update(path, |n| n.breaker = Some(state));
        self.emit(Event::Breaker {
            path: path.to_owned(),
            state,
        });
    }

    /// `path` stopped for good and leaves the registry (with everything below it).
    pub fn stopped(&self, path: &str, reason: &str) {
        {
            let mut nodes = self.nodes();
            nodes.remove(path);
            let prefix = format!("{path}/");
            let below: Vec<String> = nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for key in below {
                nodes.remove(&key);
            }
        }
        self.emit(Event::Stopped {
            path: path.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// `path` stopped but stays listed (its spec is kept and it may be restarted on request).
    pub fn exited(&self, path: &str, reason: &str) {
        self.update(path, |n| n.status = Status::Stopped);
        self.emit(Event::Stopped {
            path: path.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// A supervisor gave up.
    pub fn escalated(&self, path: &str, reason: &str) {
        self.emit(Event::Escalated {
            path: path.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn update(&self, path: &str, f: impl FnOnce(&mut Node)) {
        if let Some(node) = self.nodes().get_mut(path) {
            f(node);
        }
    }

    /// Every registered actor, in tree order (a parent before its children).
    pub fn list(&self) -> Vec<ActorInfo> {
        self.nodes().iter().map(|(path, n)| info(path, n)).collect()
    }

    /// One entry, if registered.
    pub fn get(&self, path: &str) -> Option<ActorInfo> {
        self.nodes().get(path).map(|n| info(path, n))
    }

    /// The counters of the current incarnation of `path`.
    pub fn stats(&self, path: &str) -> Option<Arc<ActorStats>> {
        self.nodes().get(path).map(|n| n.stats.clone())
    }

    /// A live stream of events from now on. A reader that falls more than 1024 events behind
    /// gets `Lagged` and should re-read [`list`](Self::list).
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.inner.events.subscribe()
    }

    /// The last few hundred events, oldest first.
    pub fn recent_events(&self) -> Vec<EventRecord> {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    fn emit(&self, event: Event) {
        let record = EventRecord {
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: now_ms(),
            event,
        };
        {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(record.clone());
        }
        // No subscriber is fine: the registry and the recent ring still hold the facts.
        let _ = self.inner.events.send(record);
    }
}
