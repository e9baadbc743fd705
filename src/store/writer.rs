//! The single writer: one OS thread owns every write transaction and group-commits.
//!
//! Why a dedicated thread: a durable redb commit blocks on `fsync` for milliseconds, which must
//! never happen on a tokio worker, and redb allows one write transaction at a time anyway. Why
//! group commit: an fsync costs about the same for one record as for a hundred (notes §3.3), so
//! the writer takes *everything* that is queued, applies it in order in one transaction, commits
//! once with [`Durability::Immediate`] and only then acknowledges each request. There is no
//! artificial delay: a lone request is committed at once, and requests that arrive while a commit
//! is in flight simply form the next batch. Under load, batches grow by themselves.
//!
//! Per-request failures (a stale incarnation, an unreadable record) are answered individually and
//! do not abort the batch. A failed commit fails every request of the batch, because none of
//! them is durable.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability, ReadableTable, Table};
use supervisors::snapshot::{Claim, StoreError, check_fence, now_ms};
use tokio::sync::{mpsc, oneshot, watch};

use super::format::{Record, RecordHeader, SNAPSHOTS_TABLE, Snapshot};
use super::open::panic_message;
use super::recover::Recovery;
use super::stats::{BatchOutcome, Metrics};

/// The most requests one transaction takes; the rest wait for the next commit. It bounds the
/// size of a transaction (and of the fsync) at roughly this many snapshots.
pub const MAX_BATCH: usize = 4096;

/// A write for the writer thread, with the channel its answer goes back on.
pub(crate) enum Request {
    Claim {
        key: String,
        reply: oneshot::Sender<Result<Claim, StoreError>>,
    },
    Save {
        key: String,
        incarnation: u64,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Remove {
        key: String,
        incarnation: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The answer to one request, held back until the batch's commit succeeded.
enum Answer {
    Claim(Result<Claim, StoreError>),
    Unit(Result<(), StoreError>),
}

impl Request {
    /// Sends `answer`; a caller that went away (cancelled future) is simply not told.
    fn reply(self, answer: Answer) {
        match (self, answer) {
            (Request::Claim { reply, .. }, Answer::Claim(r)) => _ = reply.send(r),
            (Request::Save { reply, .. } | Request::Remove { reply, .. }, Answer::Unit(r)) => {
                _ = reply.send(r)
            }
            // apply() answers each request with its own kind; anything else is a bug here.
            _ => unreachable!("answer kind does not match request kind"),
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            Request::Claim { reply, .. } => _ = reply.send(Err(error)),
            Request::Save { reply, .. } | Request::Remove { reply, .. } => {
                _ = reply.send(Err(error))
            }
        }
    }
}

/// Starts the writer thread. It runs until every sender is dropped and the queue is drained,
/// then drops its database handle and sets `exited` to `true`.
pub(crate) fn spawn(
    mut recovery: Recovery,
    rx: mpsc::Receiver<Request>,
    metrics: Arc<Metrics>,
    exited: watch::Sender<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("borg-store-writer".into())
        .spawn(move || {
            // Each batch takes the database from the shared slot and lets go of it after,
            // so at the exit close() finds it free to close.
            run(&mut recovery, rx, &metrics);
            exited.send_replace(true);
        })
        .map(drop)
}

fn run(recovery: &mut Recovery, mut rx: mpsc::Receiver<Request>, metrics: &Metrics) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Blocks until at least one request is queued, then takes what else is there, up to the cap.
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let requests = batch.len() as u64;
        let started = Instant::now();
        // After an I/O failure: refused at once until DATA_DIR can take writes again.
        let db = match recovery.ready() {
            Ok(db) => db,
            Err(why) => {
                metrics.failed(requests);
                for request in batch.drain(..) {
                    request.fail(StoreError::Backend(why.clone()));
                }
                continue;
            }
        };
        // redb may panic on a file damaged behind its back. Answer the batch instead of leaving
        // callers hanging, then stop: nothing more should be written to such a file.
        let result = panic::catch_unwind(AssertUnwindSafe(|| commit(&db, &mut batch)));
        match result {
            Ok(Ok((answers, outcome))) => {
                metrics.committed(outcome, started.elapsed());
                for (request, answer) in batch.drain(..).zip(answers) {
                    request.reply(answer);
                }
            }
            Ok(Err(why)) => {
                tracing::error!(requests, error = %why, "snapshot commit failed");
                recovery.failed(&why);
                metrics.failed(requests);
                for request in batch.drain(..) {
                    request.fail(StoreError::Backend(format!("commit failed: {why}")));
                }
            }
            Err(panic) => {
                let why = panic_message(&*panic);
                tracing::error!(requests, error = %why, "snapshot writer panicked; stopping");
                metrics.failed(requests);
                for request in batch.drain(..) {
                    request.fail(StoreError::Backend(format!(
                        "snapshot writer panicked: {why}"
                    )));
                }
                // Later requests find the channel closed and get StoreError::Closed.
                return;
            }
        }
    }
}

/// Applies the batch in order in one durable transaction. Returns one answer per request, in
/// order, or why the transaction could not be committed.
fn commit(db: &Database, batch: &mut [Request]) -> Result<(Vec<Answer>, BatchOutcome), String> {
    let mut tx = db.begin_write().map_err(|e| e.to_string())?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| e.to_string())?;
    let mut outcome = BatchOutcome {
        requests: batch.len() as u64,
        ..BatchOutcome::default()
    };
    let answers = {
        let mut table = tx.open_table(SNAPSHOTS_TABLE).map_err(|e| e.to_string())?;
        let saved_at_ms = now_ms();
        batch
            .iter_mut()
            .map(|request| apply(&mut table, request, saved_at_ms, &mut outcome))
            .collect()
    };
    tx.commit().map_err(|e| e.to_string())?;
    Ok((answers, outcome))
}

type SnapshotTable<'txn> = Table<'txn, &'static str, &'static [u8]>;

/// Applies one request to the open table. Each request does at most one insert, so a request
/// that fails leaves nothing half-done behind for the rest of the batch.
fn apply(
    table: &mut SnapshotTable<'_>,
    request: &mut Request,
    saved_at_ms: u64,
    outcome: &mut BatchOutcome,
) -> Answer {
    match request {
        Request::Claim { key, .. } => {
            let answer = claim(table, key);
            outcome.claims += u64::from(answer.is_ok());
            Answer::Claim(answer)
        }
        Request::Save {
            key,
            incarnation,
            bytes,
            ..
        } => {
            let len = bytes.len() as u64;
            // The bytes move into the record; the request keeps only its reply channel.
            let answer = save(table, key, *incarnation, std::mem::take(bytes), saved_at_ms);
            match &answer {
                Ok(()) => {
                    outcome.saves += 1;
                    outcome.bytes += len;
                }
                Err(StoreError::Stale { .. }) => outcome.stale += 1,
                Err(_) => {}
            }
            Answer::Unit(answer)
        }
        Request::Remove {
            key, incarnation, ..
        } => {
            let answer = remove(table, key, *incarnation);
            match &answer {
                Ok(()) => outcome.removes += 1,
                Err(StoreError::Stale { .. }) => outcome.stale += 1,
                Err(_) => {}
            }
            Answer::Unit(answer)
        }
    }
}

fn backend(key: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("snapshot {key}: {what}"))
}

/// The header of the key's record, if it has one. Only the fixed header is parsed: a save does
/// not need to copy the old snapshot to check the fence.
fn header(table: &SnapshotTable<'_>, key: &str) -> Result<Option<RecordHeader>, StoreError> {
    let guard = table.get(key).map_err(|e| backend(key, e))?;
    guard
        .map(|g| RecordHeader::parse(g.value()).map_err(|e| backend(key, e)))
        .transpose()
}

fn put(table: &mut SnapshotTable<'_>, key: &str, record: &Record) -> Result<(), StoreError> {
    table
        .insert(key, record.encode().as_slice())
        .map(drop)
        .map_err(|e| backend(key, e))
}

fn claim(table: &mut SnapshotTable<'_>, key: &str) -> Result<Claim, StoreError> {
    let current = {
        let guard = table.get(key).map_err(|e| backend(key, e))?;
        guard
            .map(|g| Record::decode(g.value()).map_err(|e| backend(key, e)))
            .transpose()?
    };
    let (incarnation, snapshot) = match current {
        Some(record) => (record.incarnation, record.snapshot),
        None => (0, None),
    };
    let next = incarnation
        .checked_add(1)
        .ok_or_else(|| backend(key, "incarnation counter exhausted"))?;
    let record = Record {
        incarnation: next,
        snapshot,
    };
    put(table, key, &record)?;
    Ok(Claim {
        incarnation: next,
        last: record.into_stored(),
    })
}

fn save(
    table: &mut SnapshotTable<'_>,
    key: &str,
    incarnation: u64,
    bytes: Vec<u8>,
    saved_at_ms: u64,
) -> Result<(), StoreError> {
    if let Some(current) = header(table, key)? {
        check_fence(key, current.incarnation, incarnation)?;
    }
    let record = Record {
        incarnation,
        snapshot: Some(Snapshot {
            incarnation,
            saved_at_ms,
            bytes,
        }),
    };
    put(table, key, &record)
}

fn remove(table: &mut SnapshotTable<'_>, key: &str, incarnation: u64) -> Result<(), StoreError> {
    let Some(current) = header(table, key)? else {
        return Ok(()); // nothing stored: nothing to fence, nothing to forget
    };
    check_fence(key, current.incarnation, incarnation)?;
    // Keep the key with its incarnation and no snapshot: dropping the key would reset the fence
    // and let a zombie of an older incarnation write the state back.
    let record = Record {
        incarnation: current.incarnation.max(incarnation),
        snapshot: None,
    };
    put(table, key, &record)
}
