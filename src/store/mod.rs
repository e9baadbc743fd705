//! The daemon's snapshot store: one redb file, `<data_dir>/borg.redb`, behind the
//! [`SnapshotStore`] port of the `supervisors` crate.
//!
//! - **Writes** (claims, saves, removes) go to a single writer thread that group-commits them
//!   durably and acknowledges each only after its commit (`writer.rs`). Incarnation fencing is
//!   checked there, in commit order, exactly as [`check_fence`](supervisors::snapshot::check_fence)
//!   defines it.
//! - **Reads** ([`load`](SnapshotStore::load), [`Store::list`]) run on tokio's blocking pool in
//!   their own read transactions, concurrently with the writer (redb's MVCC gives each one a
//!   consistent view of the last commit).
//! - **Opening** refuses, without modifying them, files that are not a borg store or were written
//!   by a newer borg (`open.rs`); everything persisted carries a version ([`format`](mod@format)).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use borg::store::Store;
//! use supervisors::snapshot::SnapshotStore;
//!
//! let store = Store::open(std::path::Path::new("data"))?;
//! let claim = store.claim("repo/borg").await?;
//! store.save("repo/borg", claim.incarnation, b"BSNP..".to_vec()).await?;
//! println!("{} commits so far", store.stats().commits);
//! store.close().await;
//! # Ok(()) }
//! ```

pub mod format;
mod open;
mod peek;
mod recover;
mod stats;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable};
use supervisors::snapshot::{Claim, SnapshotStore, StoreError, StoreFuture, StoredSnapshot};
use tokio::sync::{mpsc, oneshot, watch};

use format::{Record, RecordHeader, SNAPSHOTS_TABLE};
pub use open::{FILE_NAME, OpenError, OpenErrorKind};
pub use peek::peek;
pub use stats::{LATENCY_WINDOW, StoreStatsSnapshot};
pub use writer::MAX_BATCH;

/// How many requests may wait for the writer before senders wait too (backpressure for a
/// runaway producer instead of unbounded memory). Two full batches.
const QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

/// The redb snapshot store. Cheap to clone; every clone is a handle on the same writer.
/// The writer finishes its queue and stops when the last handle is dropped or on [`close`].
///
/// [`close`]: Store::close
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The name the rest of the daemon uses for a clone it passes around.
pub type StoreHandle = Store;

struct Inner {
    path: PathBuf,
    /// `None` once closed: new requests get [`StoreError::Closed`].
    sender: Mutex<Option<mpsc::Sender<writer::Request>>>,
    /// Shared with the writer (which replaces it when it reopens the file after an I/O
    /// failure, `recover.rs`) and with readers; `None` once closed.
    db: recover::Slot,
    metrics: Arc<stats::Metrics>,
    /// Becomes `true` when the writer thread has drained its queue and let go of the database.
    writer_exited: watch::Receiver<bool>,
}

/// One key as [`Store::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The persistence key.
    pub key: String,
    /// The key's current incarnation (fence).
    pub incarnation: u64,
    /// When the stored snapshot was saved; `None` when the key holds no snapshot (claimed but
    /// never saved, or removed: the key stays to keep its fence).
    pub saved_at_ms: Option<u64>,
    /// Size of the stored snapshot in bytes (0 without one).
    pub size: u64,
}

/// Every key of `db` with its incarnation and snapshot age and size, in key order.
fn list_keys(db: &impl ReadableDatabase) -> Result<Vec<KeyInfo>, StoreError> {
    let tx = db.begin_read().map_err(backend)?;
    let table = tx.open_table(SNAPSHOTS_TABLE).map_err(backend)?;
    let mut keys = Vec::new();
    for entry in table.iter().map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        let key = key.value().to_owned();
        let header = RecordHeader::parse(value.value())
            .map_err(|e| StoreError::Backend(format!("snapshot {key}: {e}")))?;
        keys.push(KeyInfo {
            key,
            incarnation: header.incarnation,
            saved_at_ms: header.has_snapshot.then_some(header.saved_at_ms),
            size: header.snapshot_len as u64,
        });
    }
    Ok(keys)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain Options, consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens `<data_dir>/borg.redb`, creating the folder and the store when missing, and starts
    /// the writer thread. Blocking (it may verify and repair the file): call it before the
    /// runtime starts or from `spawn_blocking`. An existing file that is not a borg store this
    /// build can use is refused and left byte-for-byte untouched.
    pub fn open(data_dir: &Path) -> Result<Store, OpenError> {
        let (db, path) = open::open_database(data_dir)?;
        let db: recover::Slot = Arc::new(Mutex::new(Some(Arc::new(db))));
        let metrics = Arc::new(stats::Metrics::default());
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (exited_tx, exited_rx) = watch::channel(false);
        let recovery = recover::Recovery::new(data_dir.to_owned(), db.clone());
        writer::spawn(recovery, rx, metrics.clone(), exited_tx).map_err(|e| OpenError {
            path: path.clone(),
            kind: OpenErrorKind::Io(e),
        })?;
        tracing::info!(path = %path.display(), "snapshot store open");
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                sender: Mutex::new(Some(tx)),
                db,
                metrics,
                writer_exited: exited_rx,
            }),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's metrics (cheap: a handful of atomic loads and a sort of the latency window).
    pub fn stats(&self) -> StoreStatsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Every key with its incarnation and snapshot age and size, in key order.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, StoreError> {
        self.read(list_keys).await
    }

    /// Stops taking requests, lets the writer commit what is queued, waits for it to exit and
    /// closes the file. Later requests get [`StoreError::Closed`]. Idempotent; every handle sees
    /// the store closed.
    pub async fn close(&self) {
        // Dropping our sender ends the writer's loop once in-flight senders are done and the
        // queue is drained; it never drops queued requests.
        drop(lock(&self.inner.sender).take());
        let mut exited = self.inner.writer_exited.clone();
        // An Err means the writer thread is gone without saying so (it panicked): also exited.
        _ = exited.wait_for(|&done| done).await;
        let Some(mut db) = lock(&self.inner.db).take() else {
            return;
        };
        // A read may still hold the database for a moment; wait for it so that the file is
        // unlocked when close() returns (a reopen in this process must not find it busy).
        for _ in 0..5_000 {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    match tokio::task::spawn_blocking(move || db.close()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "closing the snapshot store failed")
                        }
                        Err(e) => tracing::warn!(error = %e, "closing the snapshot store failed"),
                    }
                    tracing::info!(path = %self.inner.path.display(), "snapshot store closed");
                    return;
                }
                Err(shared) => db = shared,
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tracing::warn!("a read kept the snapshot store open past close(); it closes when done");
    }

    /// Sends a write to the writer thread and waits for its durable acknowledgement.
    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Request,
    ) -> Result<T, StoreError> {
        let sender = lock(&self.inner.sender).clone().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        // Do not keep the writer alive while waiting: close() waits for senders to go away.
        drop(sender);
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the snapshot writer stopped before acknowledging the write".into(),
            ))
        })
    }

    /// Runs a read on tokio's blocking pool against the shared database.
    /// Runs `f` on the database off the async workers (reads only: the writer thread owns
    /// every write). For this module and tools such as `borg backup`.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = lock(&self.inner.db).clone().ok_or(StoreError::Closed)?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("snapshot read failed: {e}")))?
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SnapshotStore for Store {
    fn claim<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Claim> {
        Box::pin(self.submit(|reply| writer::Request::Claim {
            key: key.to_owned(),
            reply,
        }))
    }

    fn save<'a>(&'a self, key: &'a str, incarnation: u64, bytes: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(self.submit(move |reply| writer::Request::Save {
            key: key.to_owned(),
            incarnation,
            bytes,
            reply,
        }))
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSnapshot>> {
        let key = key.to_owned();
        Box::pin(self.read(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(SNAPSHOTS_TABLE).map_err(backend)?;
            let Some(value) = table.get(key.as_str()).map_err(backend)? else {
                return Ok(None);
            };
            let record = Record::decode(value.value())
                .map_err(|e| StoreError::Backend(format!("snapshot {key}: {e}")))?;
            Ok(record.into_stored())
        }))
    }

    fn remove<'a>(&'a self, key: &'a str, incarnation: u64) -> StoreFuture<'a, ()> {
        Box::pin(self.submit(move |reply| writer::Request::Remove {
            key: key.to_owned(),
            incarnation,
            reply,
        }))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}
