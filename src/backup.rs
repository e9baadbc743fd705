//! `borg backup <file>` and `borg restore <file>`: a consistent copy of the snapshot store,
//! and putting one back.
//!
//! A backup is itself a borg store file (same tables, same format), so anything that can read
//! a store can read a backup, and restoring is a checked file copy.
//!
//! - **Backup** while the daemon runs must go through it: the daemon holds redb's lock on the
//!   store, so `borg backup` sends `{"cmd":"backup","path":..}` over the control socket and the
//!   daemon's [`Store::backup_to`] copies every table inside one read transaction (consistent:
//!   every snapshot acked before the backup began is in it) into a new file next to the target,
//!   renamed into place (`copy.rs`). With no daemon running the command opens the store itself
//!   and does the same.
//! - **Restore** needs the daemon stopped. It checks the file first (`verify.rs`): a redb file
//!   closed cleanly, borg's meta table with a format this build knows, every record and
//!   snapshot header decodable. Then it copies the file next to the store, checks the copy,
//!   keeps the old store as `borg.redb.before-restore` (a hard link, so there is never a
//!   moment without a store) and renames the copy over `borg.redb`.
//!
//! Both refuse an existing target without `--force` (for restore: an earlier
//! `.before-restore`), and say what to do.

mod cli;
mod copy;
mod verify;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use supervisors::snapshot::StoreError;

use crate::store::{FILE_NAME, OpenError, Store};

pub use cli::{backup_command, restore_command};
pub(crate) use copy::copy_store;
pub use verify::{StoreFileSummary, in_use, verify_file};

/// Told the number of keys copied or checked so far (called once per key).
pub type Progress = Box<dyn FnMut(u64) + Send>;

/// Suffix of the store kept by `borg restore`: `borg.redb.before-restore`.
pub const BEFORE_RESTORE_SUFFIX: &str = ".before-restore";

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// The backup file.
    pub path: PathBuf,
    /// Tables copied.
    pub tables: usize,
    /// Keys copied, over all tables.
    pub keys: u64,
    /// Key and value bytes copied.
    pub bytes: u64,
}

/// Why a backup or restore was refused or failed; `Display` says what to do.
#[derive(Debug)]
pub enum BackupError {
    /// The target exists and `--force` was not given.
    TargetExists(PathBuf),
    /// The target is the live store itself.
    TargetIsStore(PathBuf),
    /// DATA_DIR holds no store.
    NoStore(PathBuf),
    /// The file is not a borg store or backup.
    NotAStore { path: PathBuf, why: String },
    /// A redb file that was not closed cleanly (a copy of a store in use, or a store after a
    /// crash, which the daemon repairs when it opens it).
    Unclean(PathBuf),
    /// A store or backup written by a newer borg.
    NewerFormat {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    /// A daemon is using DATA_DIR (restore needs it stopped).
    DaemonRunning(PathBuf),
    /// A `.before-restore` file of an earlier restore is in the way.
    BeforeRestoreExists(PathBuf),
    /// A table borg cannot copy faithfully (unknown key/value types, multimap).
    UnknownTable(String),
    /// Reading or writing a file failed.
    Io { doing: String, error: io::Error },
    /// redb failed.
    Database { doing: String, why: String },
    /// The store could not be opened (no daemon running).
    Open(OpenError),
    /// The running store refused the read.
    Store(StoreError),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TargetExists(p) => write!(
                f,
                "{} already exists; pass --force to replace it, or name another file",
                p.display()
            ),
            Self::TargetIsStore(p) => write!(
                f,
                "{} is the live store itself; name a file outside DATA_DIR",
                p.display()
            ),
            Self::NoStore(p) => write!(
                f,
                "there is no store at {}, so nothing to back up; is DATA_DIR (or --dir) right?",
                p.display()
            ),
            Self::NotAStore { path, why } => {
                write!(f, "{} is not a borg store or backup: {why}", path.display())
            }
            Self::Unclean(p) => write!(
                f,
                "{} was not closed cleanly (a copy of a store in use?); make backups with \
                 `borg backup`, which copies consistently while the daemon runs",
                p.display()
            ),
            Self::NewerFormat {
                path,
                found,
                supported,
            } => write!(
                f,
                "{} was written by a newer borg (format version {found}; this build supports \
                 up to {supported}); restore it with that borg version or a newer one",
                path.display()
            ),
            Self::DaemonRunning(dir) => write!(
                f,
                "a borg daemon is using {}; stop it first (systemctl stop borg, or SIGTERM), \
                 then restore",
                dir.display()
            ),
            Self::BeforeRestoreExists(p) => write!(
                f,
                "{} is left from an earlier restore; move it away, or pass --force to \
                 replace it",
                p.display()
            ),
            Self::UnknownTable(name) => write!(
                f,
                "the store has a table {name:?} whose types this borg does not know, so it \
                 cannot copy it faithfully; back up with the borg version that wrote it"
            ),
            Self::Io { doing, error } => write!(f, "cannot {doing}: {error}"),
            Self::Database { doing, why } => write!(f, "cannot {doing}: {why}"),
            Self::Open(e) => e.fmt(f),
            Self::Store(e) => write!(f, "the store refused the backup: {e}"),
        }
    }
}

impl std::error::Error for BackupError {}

pub(crate) fn io_error(doing: String) -> impl FnOnce(io::Error) -> BackupError {
    move |error| BackupError::Io { doing, error }
}

pub(crate) fn db_error<E: fmt::Display>(doing: &str) -> impl FnOnce(E) -> BackupError {
    let doing = doing.to_owned();
    move |e| BackupError::Database {
        doing,
        why: e.to_string(),
    }
}

/// A scratch file, removed when this goes out of scope unless it was renamed away.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        _ = std::fs::remove_file(&self.0);
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreSummary {
    /// The store that now holds the backup.
    pub store: PathBuf,
    /// Where the store it replaced was kept (`None` when there was none).
    pub previous: Option<PathBuf>,
    /// What the restored store holds.
    pub contents: StoreFileSummary,
}

/// Backs the store of `data_dir` up to `target` with no daemon running: opens the store
/// (refused while a daemon holds it), copies, closes.
pub async fn backup_offline(
    data_dir: &Path,
    target: &Path,
    force: bool,
    progress: Progress,
) -> Result<BackupSummary, BackupError> {
    let store_file = data_dir.join(FILE_NAME);
    if !store_file.is_file() {
        return Err(BackupError::NoStore(store_file));
    }
    let dir = data_dir.to_owned();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| BackupError::Store(StoreError::Backend(e.to_string())))?
        .map_err(BackupError::Open)?;
    let result = store.backup_to(target, force, progress).await;
    store.close().await;
    result
}

/// Puts the backup `file` in place of `data_dir`'s store (see the module docs). Blocking.
pub fn restore(
    data_dir: &Path,
    file: &Path,
    force: bool,
    mut progress: Progress,
) -> Result<RestoreSummary, BackupError> {
    let store = data_dir.join(FILE_NAME);
    if store.exists() && in_use(&store) {
        return Err(BackupError::DaemonRunning(data_dir.to_owned()));
    }
    if let (Ok(a), Ok(b)) = (file.canonicalize(), store.canonicalize())
        && a == b
    {
        return Err(BackupError::TargetIsStore(file.to_owned()));
    }
    verify_file(file, &mut progress)?;
    let previous = data_dir.join(format!("{FILE_NAME}{BEFORE_RESTORE_SUFFIX}"));
    if previous.exists() && !force {
        return Err(BackupError::BeforeRestoreExists(previous));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(io_error(format!("create {}", data_dir.display())))?;
    let scratch = Scratch(data_dir.join(format!(".{FILE_NAME}.restore-{}", std::process::id())));
    std::fs::copy(file, &scratch.0).map_err(io_error(format!(
        "copy {} into {}",
        file.display(),
        data_dir.display()
    )))?;
    std::fs::File::open(&scratch.0)
        .and_then(|f| f.sync_all())
        .map_err(io_error(format!("flush {}", scratch.0.display())))?;
    // What lands is what was checked: check the copy, not only the original.
    let contents = verify_file(&scratch.0, &mut progress)?;
    let kept = if store.exists() {
        if previous.exists() {
            std::fs::remove_file(&previous)
                .map_err(io_error(format!("replace {}", previous.display())))?;
        }
        // A hard link keeps the old store under its new name while `store` still points at
        // it, so a crash in between leaves a store in place either way.
        if std::fs::hard_link(&store, &previous).is_err() {
            std::fs::copy(&store, &previous).map_err(io_error(format!(
                "keep the old store as {}",
                previous.display()
            )))?;
        }
        Some(previous)
    } else {
        None
    };
    // A daemon that started meanwhile would hold the old file; refuse rather than swap it.
    if store.exists() && in_use(&store) {
        return Err(BackupError::DaemonRunning(data_dir.to_owned()));
    }
    std::fs::rename(&scratch.0, &store)
        .map_err(io_error(format!("move the backup to {}", store.display())))?;
    copy::sync_dir(&store);
    Ok(RestoreSummary {
        store,
        previous: kept,
        contents,
    })
}

// Here rather than in `store`, so the store does not depend on its backups.
impl Store {
    /// Writes a consistent copy of the whole store to `target` (`borg backup`): every table is
    /// copied inside ONE read transaction, so the copy holds exactly what was committed (and
    /// so acked) before it began, while the writer goes on committing beside it. The copy is
    /// built next to `target` and renamed into place; see this module for the rules
    /// (`force` replaces an existing `target`; `progress` gets the count of keys copied).
    pub async fn backup_to(
        &self,
        target: &Path,
        force: bool,
        progress: Progress,
    ) -> Result<BackupSummary, BackupError> {
        let (target, live) = (target.to_owned(), self.path().to_owned());
        self.read(move |db| Ok(copy_store(db, &live, &target, force, progress)))
            .await
            .map_err(BackupError::Store)?
    }
}
