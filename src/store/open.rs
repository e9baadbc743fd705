//! Opening `<data_dir>/borg.redb`: create it when missing, refuse anything that is not ours.
//!
//! The rule is that a file borg did not write is never modified. That rules out
//! `Database::create` on an existing path (it initializes an empty file) and even a writable
//! `Database::open` as the first step (it sets redb's recovery flag in the header at once). So
//! an existing file goes through [`verify`] first, which only reads:
//!
//! 1. an empty file, or one without redb's magic bytes, is refused before redb sees it;
//! 2. otherwise it is opened *read-only*, and its `meta` table must hold our magic and a format
//!    version this build understands;
//! 3. a redb file that was not shut down cleanly (the normal state after a crash of the
//!    daemon) cannot be opened read-only, because redb must repair it first. The repair writes,
//!    so it runs on a scratch copy next to the file; only once the copy proves to be a borg store
//!    is the real file opened writable, which repairs it for real. This costs a copy of the file
//!    after a crash, which is acceptable for a home server's store.
//!
//! A new store is built under a temporary name with its `meta` table committed, then
//! hard-linked into place, so a crash during creation never leaves a `borg.redb` that looks
//! foreign (redb without `meta`) and would be refused on every later start.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, StorageError, TableError};

use super::format::{
    META_TABLE, SNAPSHOTS_TABLE, STORE_FORMAT_VERSION, STORE_META_KEY, decode_store_meta,
    encode_store_meta,
};

/// The store's file name inside the data directory.
pub const FILE_NAME: &str = "borg.redb";
/// redb's file magic (`MAGICNUMBER` in redb's header.rs, not exported by the crate).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// Prefixes of the scratch files next to the store; leftovers of a crash are removed on open.
const NEW_PREFIX: &str = ".borg.redb.new-";
const VERIFY_PREFIX: &str = ".borg.redb.verify-";
/// redb's default page cache is 1 GiB; a home server's snapshots need far less.
const CACHE_BYTES: usize = 64 << 20;

/// Why the store could not be opened. Its `Display` names the file and what the user can do.
#[derive(Debug)]
pub struct OpenError {
    /// The store file (`<data_dir>/borg.redb`).
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: OpenErrorKind,
}

/// What went wrong in [`Store::open`](super::Store::open).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenErrorKind {
    /// The data directory cannot be created or read.
    DataDir(io::Error),
    /// Reading or writing the file failed (permissions, disk full).
    Io(io::Error),
    /// Something other than a regular file is at the path.
    NotAFile,
    /// The file exists and is empty.
    Empty,
    /// The file is not a redb database at all.
    NotRedb,
    /// A redb file that redb cannot read.
    Corrupt(String),
    /// A readable redb database that some other program wrote.
    NotABorgStore(String),
    /// A borg store written by a newer build.
    NewerFormat { found: u16, supported: u16 },
    /// Another process holds the file open.
    Locked,
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            OpenErrorKind::DataDir(e) | OpenErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        const UNTOUCHED: &str =
            "borg left it untouched: move it away or set DATA_DIR to another folder";
        match &self.kind {
            OpenErrorKind::DataDir(e) => {
                let dir = self.path.parent().unwrap_or(Path::new(".")).display();
                write!(
                    f,
                    "cannot create or read the data folder {dir} for {path}: {e}; \
                     fix its permissions or set DATA_DIR to a writable folder"
                )
            }
            OpenErrorKind::Io(e) => write!(
                f,
                "cannot open the snapshot store {path}: {e}; check the file's permissions \
                 and free disk space, or set DATA_DIR to another folder"
            ),
            OpenErrorKind::NotAFile => write!(
                f,
                "{path} is not a regular file, so it cannot be borg's snapshot store; {UNTOUCHED}"
            ),
            OpenErrorKind::Empty => write!(
                f,
                "{path} is an empty file, not a borg snapshot store; {UNTOUCHED}"
            ),
            OpenErrorKind::NotRedb => write!(
                f,
                "{path} is not a borg snapshot store (not a redb database); {UNTOUCHED}"
            ),
            OpenErrorKind::Corrupt(why) => write!(
                f,
                "{path} is corrupt ({why}); borg left it untouched: restore it from a backup, \
                 or move it away to start with an empty store"
            ),
            OpenErrorKind::NotABorgStore(why) => write!(
                f,
                "{path} is a redb database but not a borg store ({why}); {UNTOUCHED}"
            ),
            OpenErrorKind::NewerFormat { found, supported } => write!(
                f,
                "{path} was written by a newer borg (store format version {found}, this build \
                 supports up to {supported}); borg left it untouched: upgrade borg, or set \
                 DATA_DIR to another folder"
            ),
            OpenErrorKind::Locked => write!(
                f,
                "another borg daemon is using {path}; stop it first, or set DATA_DIR to \
                 another folder"
            ),
        }
    }
}

/// Opens (creating if missing) the store in `data_dir` for writing, after verifying it.
pub(crate) fn open_database(data_dir: &Path) -> Result<(Database, PathBuf), OpenError> {
    let path = data_dir.join(FILE_NAME);
    let err = |kind| OpenError {
        path: path.clone(),
        kind,
    };
    fs::create_dir_all(data_dir).map_err(|e| err(OpenErrorKind::DataDir(e)))?;
    match fs::metadata(&path) {
        Ok(meta) if !meta.is_file() => return Err(err(OpenErrorKind::NotAFile)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create(data_dir, &path).map_err(err)?;
        }
        Err(e) => return Err(err(OpenErrorKind::Io(e))),
    }
    verify(&path).map_err(err)?;
    let db = guarded(|| builder().open(&path)).map_err(err)?;
    // Verified above without holding the lock; check again now that we hold it, in case the
    // file was swapped in between (the writable open has then touched only the header of a file
    // that passed verification a moment ago).
    check_meta(&db).map_err(err)?;
    remove_leftovers(data_dir);
    Ok((db, path))
}

pub(super) fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// Runs a redb open, turning a panic (redb may panic on a damaged file) into an error. The
/// inner result is redb's own answer, for callers that must tell its errors apart.
pub(super) fn guarded_raw<T>(
    open: impl FnOnce() -> Result<T, DatabaseError>,
) -> Result<Result<T, DatabaseError>, OpenErrorKind> {
    panic::catch_unwind(AssertUnwindSafe(open)).map_err(|panic| {
        OpenErrorKind::Corrupt(format!(
            "redb failed reading it: {}",
            panic_message(&*panic)
        ))
    })
}

/// [`guarded_raw`] with redb's errors turned into an [`OpenErrorKind`] too.
pub(super) fn guarded<T>(
    open: impl FnOnce() -> Result<T, DatabaseError>,
) -> Result<T, OpenErrorKind> {
    guarded_raw(open)?.map_err(database_error)
}

pub(super) fn database_error(e: DatabaseError) -> OpenErrorKind {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            OpenErrorKind::Locked
        }
        DatabaseError::UpgradeRequired(v) => OpenErrorKind::NotABorgStore(format!(
            "redb file format {v}, which this redb cannot read"
        )),
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            OpenErrorKind::Corrupt("the file is truncated".into())
        }
        DatabaseError::Storage(StorageError::Io(e)) => OpenErrorKind::Io(e),
        other => OpenErrorKind::Corrupt(other.to_string()),
    }
}

/// Checks, without writing a byte, that `path` is a borg store this build can open.
fn verify(path: &Path) -> Result<(), OpenErrorKind> {
    check_magic(path)?;
    match guarded_raw(|| builder().open_read_only(path))? {
        Ok(db) => check_meta(&db),
        // Not shut down cleanly: redb must repair it before anyone can read it.
        Err(DatabaseError::RepairAborted) => verify_copy(path),
        Err(e) => Err(database_error(e)),
    }
}

/// Refuses, before redb sees it, a file that is empty or does not start with redb's magic.
pub(super) fn check_magic(path: &Path) -> Result<(), OpenErrorKind> {
    let mut head = Vec::with_capacity(REDB_MAGIC.len());
    File::open(path)
        .and_then(|f| f.take(REDB_MAGIC.len() as u64).read_to_end(&mut head))
        .map_err(OpenErrorKind::Io)?;
    if head.is_empty() {
        return Err(OpenErrorKind::Empty);
    }
    if head != REDB_MAGIC {
        return Err(OpenErrorKind::NotRedb);
    }
    Ok(())
}

/// Verifies a file that needs crash recovery by repairing a scratch copy of it.
fn verify_copy(path: &Path) -> Result<(), OpenErrorKind> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let scratch = Scratch(dir.join(format!("{VERIFY_PREFIX}{}", std::process::id())));
    fs::copy(path, &scratch.0).map_err(OpenErrorKind::Io)?;
    let db = guarded(|| builder().open(&scratch.0))?;
    check_meta(&db)
}

/// Reads the `meta` table: ours, and of a format version this build understands?
pub(super) fn check_meta(db: &impl ReadableDatabase) -> Result<(), OpenErrorKind> {
    let read_error = |e: &dyn fmt::Display| OpenErrorKind::Corrupt(e.to_string());
    let tx = db.begin_read().map_err(|e| read_error(&e))?;
    let meta = match tx.open_table(META_TABLE) {
        Ok(table) => table,
        Err(TableError::Storage(e)) => return Err(read_error(&e)),
        Err(e) => {
            return Err(OpenErrorKind::NotABorgStore(format!(
                "no borg meta table: {e}"
            )));
        }
    };
    let value = meta.get(STORE_META_KEY).map_err(|e| read_error(&e))?;
    let version = value
        .and_then(|v| decode_store_meta(v.value()))
        .ok_or_else(|| OpenErrorKind::NotABorgStore("no borg magic in its meta table".into()))?;
    if version > STORE_FORMAT_VERSION {
        return Err(OpenErrorKind::NewerFormat {
            found: version,
            supported: STORE_FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(OpenErrorKind::Corrupt("store format version 0".into()));
    }
    tx.open_table(SNAPSHOTS_TABLE)
        .map_err(|e| OpenErrorKind::Corrupt(format!("snapshots table: {e}")))?;
    Ok(())
}

/// Builds an empty store under a scratch name and links it into place at `path`.
fn create(dir: &Path, path: &Path) -> Result<(), OpenErrorKind> {
    let scratch = Scratch(dir.join(format!("{NEW_PREFIX}{}", std::process::id())));
    // A leftover of an earlier process that had our pid; ours to replace.
    _ = fs::remove_file(&scratch.0);
    let db = guarded(|| builder().create(&scratch.0))?;
    let init = || -> Result<(), redb::Error> {
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.open_table(META_TABLE)?
            .insert(STORE_META_KEY, &encode_store_meta(STORE_FORMAT_VERSION)[..])?;
        tx.open_table(SNAPSHOTS_TABLE)?;
        tx.commit()?;
        Ok(())
    };
    init().map_err(|e| OpenErrorKind::Io(io::Error::other(e)))?;
    db.close().map_err(database_error)?;
    File::open(&scratch.0)
        .and_then(|f| f.sync_all())
        .map_err(OpenErrorKind::Io)?;
    // hard_link never replaces an existing file: if another process created the store
    // meanwhile, theirs wins and is verified like any existing file.
    if let Err(e) = fs::hard_link(&scratch.0, path)
        && !path.exists()
    {
        // A filesystem without hard links: fall back to a rename (which could replace a store
        // created in the same instant; there is no portable no-replace rename).
        fs::rename(&scratch.0, path).map_err(|_| OpenErrorKind::Io(e))?;
    }
    // Make the new directory entry durable too.
    _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Removes scratch files a crashed process left behind. Called only while we hold the store's
/// lock, so no live borg is using them (another one verifying would be refused the lock anyway).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(NEW_PREFIX) || name.starts_with(VERIFY_PREFIX) {
            tracing::info!(file = %entry.path().display(), "removing a leftover scratch file");
            _ = fs::remove_file(entry.path());
        }
    }
}

/// A scratch file, removed when this goes out of scope (also on early returns).
pub(super) struct Scratch(pub(super) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        _ = fs::remove_file(&self.0);
    }
}

/// The text of a caught panic, for error messages.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
