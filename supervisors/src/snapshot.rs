//! Snapshots: actor state as versioned bytes, and the port through which they are persisted.
//!
//! A snapshot on disk is `MAGIC ‖ version (u16 LE) ‖ postcard payload`. postcard has no field
//! names and cannot add fields compatibly, so every change to a persisted type is a new
//! version: the old type is frozen (kept, renamed `FooV1`) and [`Snapshot::upgrade`] converts it.
//! Golden byte fixtures in the tests of each state type keep every old version decodable.
//!
//! Persistence is fenced by **incarnations**. Each (re)start of an actor [claims](SnapshotStore::claim)
//! its key, which durably bumps the key's incarnation and returns the last snapshot. From then on a
//! write carrying an older incarnation, from a zombie predecessor still finishing a handler, is
//! rejected with [`StoreError::Stale`] instead of overwriting newer state.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use supervisors::snapshot::{self, Snapshot, SnapshotError};
//!
//! /// Version 1, frozen: this is how counters were stored before they had a label.
//! #[derive(Serialize, Deserialize)]
//! struct CounterV1 { count: u64 }
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Counter { count: u64, label: String }
//!
//! impl Snapshot for Counter {
//!     const VERSION: u16 = 2;
//!     fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
//!         match version {
//!             1 => {
//!                 let old: CounterV1 = snapshot::decode_payload(payload)?;
//!                 Ok(Counter { count: old.count, label: String::new() })
//!             }
//!             v => Err(SnapshotError::UnknownVersion(v)),
//!         }
//!     }
//! }
//!
//! let now = Counter { count: 7, label: "x".into() };
//! let bytes = snapshot::encode(&now);
//! assert_eq!(snapshot::decode::<Counter>(&bytes).unwrap(), now);
//!
//! // Bytes written by version 1 still load.
//! let mut v1 = snapshot::MAGIC.to_vec();
//! v1.extend_from_slice(&1u16.to_le_bytes());
//! v1.extend_from_slice(&postcard::to_stdvec(&CounterV1 { count: 3 }).unwrap());
//! assert_eq!(snapshot::decode::<Counter>(&v1).unwrap().count, 3);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::clock::now_ms;
use crate::introspect::ActorStats;

/// The four bytes every snapshot starts with.
pub const MAGIC: [u8; 4] = *b"BSNP";
const HEADER_LEN: usize = MAGIC.len() + 2;

/// A state type that can be persisted.
pub trait Snapshot: Serialize + DeserializeOwned + Send + 'static {
    /// The format version written today. Bump it on every change to the serialized shape.
    const VERSION: u16;

    /// Decodes a payload written by an older `version` (frozen types plus `From`).
    /// The default knows no older versions.
    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
        let _ = payload;
        Err(SnapshotError::UnknownVersion(version))
    }
}

/// Why bytes could not be turned back into state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Shorter than the header, or not starting with [`MAGIC`]: not a snapshot at all.
    NotASnapshot,
    /// Written by a newer build than this one; never guess at its meaning.
    NewerVersion { found: u16, supported: u16 },
    /// An older version that [`Snapshot::upgrade`] does not know.
    UnknownVersion(u16),
    /// The payload does not decode (torn, truncated or trailing bytes).
    Malformed(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASnapshot => write!(f, "not a snapshot (missing header)"),
            Self::NewerVersion { found, supported } => write!(
                f,
                "snapshot format version {found} is newer than this build supports ({supported}); upgrade borg"
            ),
            Self::UnknownVersion(v) => write!(f, "snapshot format version {v} is not known"),
            Self::Malformed(why) => write!(f, "snapshot payload is malformed: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Serializes `state` behind the header.
pub fn encode<S: Snapshot>(state: &S) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&S::VERSION.to_le_bytes());
    // postcard only fails on types serde cannot describe (maps with non-string keys are fine);
    // a state type that cannot serialize is a programming error caught by its round-trip test.
    postcard::to_io(state, &mut out).expect("snapshot state must be serializable by postcard");
    out
}

/// Reads the header of `bytes`: the format version and the payload behind it.
pub fn split_header(bytes: &[u8]) -> Result<(u16, &[u8]), SnapshotError> {
    if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    Ok((version, &bytes[HEADER_LEN..]))
}

/// Decodes bytes made by [`encode`] of this or any older version of `S`.
pub fn decode<S: Snapshot>(bytes: &[u8]) -> Result<S, SnapshotError> {
    let (version, payload) = split_header(bytes)?;
    match version.cmp(&S::VERSION) {
        std::cmp::Ordering::Equal => decode_payload(payload),
        std::cmp::Ordering::Less => S::upgrade(version, payload),
        std::cmp::Ordering::Greater => Err(SnapshotError::NewerVersion {
            found: version,
            supported: S::VERSION,
        }),
    }
}

/// Decodes a bare postcard payload as `T`, rejecting trailing bytes (a sign of a torn write).
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, SnapshotError> {
    let (value, rest) =
        postcard::take_from_bytes(payload).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SnapshotError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// The last snapshot stored under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Incarnation of the actor that wrote it.
    pub incarnation: u64,
    /// Wall-clock time of the write, milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
    /// The snapshot itself, header included.
    pub bytes: Vec<u8>,
}

/// What [`SnapshotStore::claim`] hands a starting actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The incarnation this start owns; every save must carry it.
    pub incarnation: u64,
    /// The state to resume from, if any was ever saved.
    pub last: Option<StoredSnapshot>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A newer incarnation has claimed the key; the writer is a zombie and must stop.
    Stale {
        key: String,
        current: u64,
        attempted: u64,
    },
    /// The store is shutting down or gone.
    Closed,
    /// The backend failed (I/O, corruption); the message says what and where.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stale {
                key,
                current,
                attempted,
            } => write!(
                f,
                "stale write to {key}: incarnation {attempted} was superseded by {current}"
            ),
            Self::Closed => write!(f, "snapshot store is closed"),
            Self::Backend(why) => write!(f, "snapshot store failed: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A boxed future, so that [`SnapshotStore`] stays object safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The port actors persist through. Implementations must make a write durable before its future
/// resolves `Ok`: an actor treats state as persisted only then.
pub trait SnapshotStore: Send + Sync + 'static {
    /// Starts a new incarnation of `key` (one more than any seen before, durably) and returns
    /// the last snapshot. Saves with an older incarnation fail from now on.
    fn claim<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Claim>;
    /// Stores `bytes` under `key` unless a newer incarnation owns it.
    fn save<'a>(&'a self, key: &'a str, incarnation: u64, bytes: Vec<u8>) -> StoreFuture<'a, ()>;
    /// Reads the last snapshot under `key` without claiming it.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSnapshot>>;
    /// Forgets `key` (a finished task, an unregistered chat), fenced like [`save`](Self::save).
    fn remove<'a>(&'a self, key: &'a str, incarnation: u64) -> StoreFuture<'a, ()>;
}

/// A non-durable [`SnapshotStore`] in memory, for tests and examples. It enforces the same
/// incarnation fencing as a real store.
#[derive(Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryEntries>>,
}

/// Per key: the current incarnation and the last snapshot.
type MemoryEntries = HashMap<String, (u64, Option<StoredSnapshot>)>;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (u64, Option<StoredSnapshot>)>) -> T,
    ) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Checks a write against the key's current incarnation; shared by every store implementation.
pub fn check_fence(key: &str, current: u64, attempted: u64) -> Result<(), StoreError> {
    if attempted < current {
        Err(StoreError::Stale {
            key: key.to_owned(),
            current,
            attempted,
        })
    } else {
        Ok(())
    }
}

impl SnapshotStore for MemoryStore {
    fn claim<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Claim> {
        let claim = self.with(|m| {
            let entry = m.entry(key.to_owned()).or_default();
            entry.0 += 1;
            Claim {
                incarnation: entry.0,
                last: entry.1.clone(),
            }
        });
        Box::pin(async move { Ok(claim) })
    }

    fn save<'a>(&'a self, key: &'a str, incarnation: u64, bytes: Vec<u8>) -> StoreFuture<'a, ()> {
        let result = self.with(|m| {
            let entry = m.entry(key.to_owned()).or_default();
            check_fence(key, entry.0, incarnation)?;
            entry.0 = incarnation;
            entry.1 = Some(StoredSnapshot {
                incarnation,
                saved_at_ms: now_ms(),
                bytes,
            });
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSnapshot>> {
        let found = self.with(|m| m.get(key).and_then(|e| e.1.clone()));
        Box::pin(async move { Ok(found) })
    }

    fn remove<'a>(&'a self, key: &'a str, incarnation: u64) -> StoreFuture<'a, ()> {
        let result = self.with(|m| {
            if let Some(entry) = m.get_mut(key) {
                check_fence(key, entry.0, incarnation)?;
                entry.1 = None;
            }
            Ok(())
        });
        Box::pin(async move { result })
    }
}

/// An actor's handle on its own persisted state: the key, the incarnation it claimed, and the
/// store. Create it in `pre_start` with [`Persister::restore`]; call [`Persister::save`] after
/// every state change that must survive a crash.
pub struct Persister<S> {
    store: Arc<dyn SnapshotStore>,
    key: String,
    incarnation: u64,
    stats: Option<Arc<ActorStats>>,
    _state: PhantomData<fn() -> S>,
}

/// Why a persisted actor could not restore or save.
#[derive(Debug)]
pub enum PersistError {
    /// The store refused or failed.
    Store(StoreError),
    /// The stored bytes do not decode; the actor must not start on a guess.
    Decode { key: String, error: SnapshotError },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Decode { key, error } => write!(f, "snapshot {key}: {error}"),
        }
    }
}

impl std::error::Error for PersistError {}

impl From<StoreError> for PersistError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl<S: Snapshot> Persister<S> {
    /// Claims `key` and decodes its last snapshot. `stats`, when given, records snapshot ages
    /// for introspection.
    pub async fn restore(
        store: Arc<dyn SnapshotStore>,
        key: impl Into<String>,
        stats: Option<Arc<ActorStats>>,
    ) -> Result<(Self, Option<S>), PersistError> {
        let key = key.into();
        let claim = store.claim(&key).await?;
        let state = match &claim.last {
            Some(stored) => {
                if let Some(stats) = &stats {
                    stats.record_snapshot(stored.saved_at_ms);
                }
                Some(decode(&stored.bytes).map_err(|error| PersistError::Decode {
                    key: key.clone(),
                    error,
                })?)
            }
            None => None,
        };
        let persister = Self {
            store,
            key,
            incarnation: claim.incarnation,
            stats,
            _state: PhantomData,
        };
        Ok((persister, state))
    }

    /// Durably saves `state`; resolves once the store has acknowledged the write.
    pub async fn save(&self, state: &S) -> Result<(), PersistError> {
        self.store
            .save(&self.key, self.incarnation, encode(state))
            .await?;
        if let Some(stats) = &self.stats {
            stats.record_snapshot(now_ms());
        }
        Ok(())
    }

    /// Removes the state for good (the actor's work is finished).
    pub async fn remove(&self) -> Result<(), PersistError> {
        Ok(self.store.remove(&self.key, self.incarnation).await?)
    }

    /// The incarnation this actor owns.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The key the state is stored under.
    pub fn key(&self) -> &str {
        &self.key
    }
}
