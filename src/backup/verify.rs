//! Checking that a file is a borg store (or backup, which is the same thing) this build can
//! use, without writing a byte to it: what `borg restore` does before it touches DATA_DIR.
//!
//! A backup is accepted only if redb opens it read-only (so it was closed cleanly, as every
//! `borg backup` is), its `meta` table carries borg's magic and a store format this build
//! knows, and every record of its `snapshots` table decodes, with a snapshot header on every
//! snapshot. Anything else is refused with what it is instead.

use std::fs::{self, File};
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableError};
use serde::Serialize;

use super::{BackupError, db_error};
use crate::store::format::{
    META_TABLE, Record, RecordError, SNAPSHOTS_TABLE, STORE_FORMAT_VERSION, STORE_META_KEY,
    decode_store_meta,
};

/// redb's file magic (as in `store/open.rs`; the crate does not export it).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// What a verified store file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreFileSummary {
    /// The store format version in its `meta` table.
    pub format: u16,
    /// Tables in the file.
    pub tables: usize,
    /// Keys in the `snapshots` table (with or without a snapshot).
    pub keys: u64,
    /// Keys that hold a snapshot.
    pub snapshots: u64,
}

/// Checks `path` as described in the module docs; `progress` gets the count of records read.
pub fn verify_file(
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<StoreFileSummary, BackupError> {
    let not_a_store = |why: String| BackupError::NotAStore {
        path: path.to_owned(),
        why,
    };
    let meta = fs::metadata(path).map_err(super::io_error(format!("read {}", path.display())))?;
    if !meta.is_file() {
        return Err(not_a_store("it is not a regular file".into()));
    }
    let mut head = Vec::with_capacity(REDB_MAGIC.len());
    File::open(path)
        .and_then(|f| f.take(REDB_MAGIC.len() as u64).read_to_end(&mut head))
        .map_err(super::io_error(format!("read {}", path.display())))?;
    if head.is_empty() {
        return Err(not_a_store("it is empty".into()));
    }
    if head != REDB_MAGIC {
        return Err(not_a_store("it is not a redb database".into()));
    }
    // redb may panic on a damaged file; that is a refusal, not a crash of the command.
    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
        Database::builder().open_read_only(path)
    }))
    .map_err(|_| not_a_store("redb cannot read it (damaged)".into()))?;
    let db = opened.map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            not_a_store("another process has it open; stop that process first".into())
        }
        DatabaseError::RepairAborted => BackupError::Unclean(path.to_owned()),
        other => not_a_store(format!("redb cannot read it: {other}")),
    })?;
    let read = db.begin_read().map_err(db_error("read the file"))?;
    let tables = read
        .list_tables()
        .map_err(db_error("list the file's tables"))?
        .count();
    let meta_table = match read.open_table(META_TABLE) {
        Ok(table) => table,
        Err(TableError::Storage(e)) => return Err(not_a_store(format!("damaged: {e}"))),
        Err(_) => {
            return Err(not_a_store(
                "a redb database without borg's meta table".into(),
            ));
        }
    };
    let format = meta_table
        .get(STORE_META_KEY)
        .map_err(db_error("read the meta table"))?
        .and_then(|v| decode_store_meta(v.value()))
        .ok_or_else(|| not_a_store("no borg magic in its meta table".into()))?;
    if format > STORE_FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            path: path.to_owned(),
            found: format,
            supported: STORE_FORMAT_VERSION,
        });
    }
    if format == 0 {
        return Err(not_a_store("store format version 0".into()));
    }
    let snapshots = read
        .open_table(SNAPSHOTS_TABLE)
        .map_err(|e| not_a_store(format!("no readable snapshots table: {e}")))?;
    let mut summary = StoreFileSummary {
        format,
        tables,
        keys: 0,
        snapshots: 0,
    };
    for entry in snapshots.iter().map_err(db_error("read the snapshots"))? {
        let (key, value) = entry.map_err(db_error("read the snapshots"))?;
        let key = key.value();
        let record = Record::decode(value.value()).map_err(|e| match e {
            RecordError::NewerVersion { found, supported } => BackupError::NewerFormat {
                path: path.to_owned(),
                found,
                supported,
            },
            other => not_a_store(format!("the record of {key:?}: {other}")),
        })?;
        if let Some(snapshot) = &record.snapshot {
            match supervisors::snapshot::split_header(&snapshot.bytes) {
                Ok((version, _)) if version > 0 => {}
                Ok(_) => return Err(not_a_store(format!("the snapshot of {key:?}: version 0"))),
                Err(e) => return Err(not_a_store(format!("the snapshot of {key:?}: {e}"))),
            }
            summary.snapshots += 1;
        }
        summary.keys += 1;
        progress(summary.keys);
    }
    Ok(summary)
}

/// Whether a process holds the store at `path` open for writing (a daemon), asked without
/// modifying the file: a read-only open is refused while a writer holds redb's lock.
pub fn in_use(path: &Path) -> bool {
    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
        Database::builder().open_read_only(path)
    }));
    matches!(
        opened,
        Ok(Err(
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch
        ))
    )
}
