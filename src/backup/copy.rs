//! Copying a live store into a backup file: the half of `borg backup` that runs where the
//! store is open (inside the daemon, through [`Store::backup_to`](crate::store::Store::backup_to),
//! or in the CLI when no daemon runs).
//!
//! Consistency comes from redb's MVCC: one read transaction sees the last commit and nothing
//! after it, however long the copy takes and whatever the writer commits meanwhile. The copy
//! is written in chunks with [`Durability::None`] (so a big store never sits in memory as one
//! write transaction) and made durable by one final [`Durability::Immediate`] commit, then
//! fsynced and moved into place. Until that move the target is untouched, so an interrupted
//! backup never leaves a half-written file under the name the user gave.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, MultimapTableHandle, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError, TableHandle,
};

use super::{BackupError, BackupSummary, Progress, Scratch, db_error, io_error};

/// Every table borg keeps maps text keys to bytes; a table of other types is refused rather
/// than copied wrongly.
type Table<'a> = TableDefinition<'a, &'static str, &'static [u8]>;

/// Bytes copied per write transaction before the next one starts.
const CHUNK_BYTES: u64 = 32 << 20;

/// Makes scratch names unique when two backups run at once in one process.
static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// Copies every table of `db` (the store at `live`) into a new file at `target`.
pub(crate) fn copy_store(
    db: &Database,
    live: &Path,
    target: &Path,
    force: bool,
    mut progress: Progress,
) -> Result<BackupSummary, BackupError> {
    check_target(live, target, force)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
    let scratch = Scratch(dir.join(format!(".{name}.partial-{}-{seq}", std::process::id())));
    _ = fs::remove_file(&scratch.0);

    let read = db
        .begin_read()
        .map_err(db_error("begin the backup's read transaction"))?;
    if let Some(table) = read
        .list_multimap_tables()
        .map_err(db_error("list the store's tables"))?
        .next()
    {
        return Err(BackupError::UnknownTable(table.name().to_owned()));
    }
    let names: Vec<String> = read
        .list_tables()
        .map_err(db_error("list the store's tables"))?
        .map(|t| t.name().to_owned())
        .collect();
    let copy = Database::builder()
        .create(&scratch.0)
        .map_err(db_error(&format!("create {}", scratch.0.display())))?;
    let mut summary = BackupSummary {
        path: target.to_owned(),
        tables: names.len(),
        keys: 0,
        bytes: 0,
    };
    for name in &names {
        copy_table(&read, &copy, name, &mut summary, &mut progress)?;
    }
    // One durable commit makes every chunk before it durable.
    let mut last = copy.begin_write().map_err(db_error("finish the copy"))?;
    last.set_durability(Durability::Immediate)
        .map_err(db_error("finish the copy"))?;
    last.commit().map_err(db_error("commit the copy"))?;
    drop(read);
    copy.close().map_err(db_error("close the copy"))?;
    File::open(&scratch.0)
        .and_then(|f| f.sync_all())
        .map_err(io_error(format!("flush {}", scratch.0.display())))?;
    place(&scratch, target, force)?;
    Ok(summary)
}

/// Refuses a target that is the live store, a folder, missing its folder, or (without
/// `force`) an existing file. Checked before any work; [`place`] checks again at the end.
pub(crate) fn check_target(live: &Path, target: &Path, force: bool) -> Result<(), BackupError> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if target.file_name().is_none() || !dir.is_dir() {
        return Err(BackupError::Io {
            doing: format!("write {}", target.display()),
            error: io::Error::new(
                io::ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            ),
        });
    }
    let Ok(meta) = fs::metadata(target) else {
        return Ok(());
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(target, live) {
        return Err(BackupError::TargetIsStore(target.to_owned()));
    }
    if meta.is_dir() {
        return Err(BackupError::Io {
            doing: format!("write {}", target.display()),
            error: io::Error::other("it is a folder; name a file in it instead"),
        });
    }
    if !force {
        return Err(BackupError::TargetExists(target.to_owned()));
    }
    Ok(())
}

/// Copies one table, in chunks of about [`CHUNK_BYTES`], creating it even when empty.
fn copy_table(
    read: &ReadTransaction,
    copy: &Database,
    name: &str,
    summary: &mut BackupSummary,
    progress: &mut Progress,
) -> Result<(), BackupError> {
    let definition: Table = TableDefinition::new(name);
    let source = match read.open_table(definition) {
        Ok(table) => table,
        Err(TableError::TableTypeMismatch { .. } | TableError::TableIsMultimap(_)) => {
            return Err(BackupError::UnknownTable(name.to_owned()));
        }
        Err(e) => return Err(db_error(&format!("open table {name}"))(e)),
    };
    let doing = format!("copy table {name}");
    let mut entries = source.iter().map_err(db_error(&doing))?;
    loop {
        let mut tx = copy.begin_write().map_err(db_error(&doing))?;
        tx.set_durability(Durability::None)
            .map_err(db_error(&doing))?;
        let mut chunk = 0;
        let mut finished = true;
        {
            let mut table = tx.open_table(definition).map_err(db_error(&doing))?;
            for entry in entries.by_ref() {
                let (key, value) = entry.map_err(db_error(&doing))?;
                table
                    .insert(key.value(), value.value())
                    .map_err(db_error(&doing))?;
                summary.keys += 1;
                let size = (key.value().len() + value.value().len()) as u64;
                summary.bytes += size;
                chunk += size;
                progress(summary.keys);
                if chunk >= CHUNK_BYTES {
                    finished = false;
                    break;
                }
            }
        }
        tx.commit().map_err(db_error(&doing))?;
        if finished {
            return Ok(());
        }
    }
}

/// Moves the finished copy to `target`: a rename when `force` allows replacing, else a hard
/// link, which never replaces a file that appeared meanwhile. Then makes the entry durable.
fn place(scratch: &Scratch, target: &Path, force: bool) -> Result<(), BackupError> {
    let moved = if force {
        fs::rename(&scratch.0, target)
    } else {
        match fs::hard_link(&scratch.0, target) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BackupError::TargetExists(target.to_owned()));
            }
            // A file system without hard links: rename, having just looked.
            Err(_) if !target.exists() => fs::rename(&scratch.0, target),
            other => other,
        }
    };
    moved.map_err(io_error(format!("move the copy to {}", target.display())))?;
    sync_dir(target);
    Ok(())
}

/// Makes a new or renamed directory entry durable (best effort: not every file system can).
pub(crate) fn sync_dir(file: &Path) {
    let dir: PathBuf = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    _ = File::open(dir).and_then(|d| d.sync_all());
}
