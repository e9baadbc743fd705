//! Writing again after `DATA_DIR` was full or read-only.
//!
//! redb refuses every write after one that failed with an I/O error ("Previous I/O error
//! occurred. Please close and re-open the database"): without help, a disk that filled up
//! for a minute would leave the daemon unable to save anything until it is restarted. So the
//! writer notes an I/O failure here ([`Recovery::failed`]) and, before each later batch,
//! asks [`Recovery::ready`]: while the folder still cannot take a write (a probe file of
//! [`PROBE_BYTES`], written and synced, tried at most once per [`RETRY_EVERY`]) the batch is
//! refused at once with a message that says what is wrong; once it can, the database is
//! closed and opened again (redb repairs it on open) and the batch goes on.
//!
//! Nothing acknowledged is lost: a failed commit is not acknowledged, and redb's commits are
//! atomic, so the file holds exactly what was acknowledged before the failure. Reads keep
//! working on the open database until the reopen, which takes a moment.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::Database;

use super::open::open_database;

/// The database handle readers clone and the writer replaces when it reopens.
pub(crate) type Slot = Arc<Mutex<Option<Arc<Database>>>>;

/// How often a store that cannot write tries again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// The probe's size: room for a commit or two of ordinary snapshots.
pub const PROBE_BYTES: usize = 1 << 20;
/// How long the reopen waits for reads in flight to let go of the old database.
const READERS_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct Recovery {
    data_dir: PathBuf,
    slot: Slot,
    /// Why the store cannot write, while it cannot.
    broken: Option<String>,
    last_try: Option<Instant>,
}

impl Recovery {
    pub fn new(data_dir: PathBuf, slot: Slot) -> Self {
        Self {
            data_dir,
            slot,
            broken: None,
            last_try: None,
        }
    }

    /// A commit failed for `why`; an I/O failure means the database must be reopened.
    pub fn failed(&mut self, why: &str) {
        if self.broken.is_none() && why.contains("I/O error") {
            tracing::error!(
                data_dir = %self.data_dir.display(),
                "the snapshot store cannot write ({why}); borg keeps running on what it holds \
                 in memory and writes again by itself once DATA_DIR has free space and is \
                 writable"
            );
            self.broken = Some(why.to_owned());
            self.last_try = Some(Instant::now());
        }
    }

    /// The database to commit the next batch to (reopened first if it had to be), or why
    /// the batch must be refused.
    pub fn ready(&mut self) -> Result<Arc<Database>, String> {
        if let Some(why) = self.broken.clone() {
            self.try_recover(&why)?;
        }
        self.slot()
            .clone()
            .ok_or_else(|| "the snapshot store is closed".to_owned())
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Database>>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses with `why` until a probe write succeeds, then reopens the file.
    fn try_recover(&mut self, why: &str) -> Result<(), String> {
        let dir = self.data_dir.display().to_string();
        let refused = |now: &str| {
            format!(
                "the snapshot store cannot write to {dir}: {now}; it writes again by itself \
                 once there is free space and the folder is writable"
            )
        };
        if self.last_try.is_some_and(|at| at.elapsed() < RETRY_EVERY) {
            return Err(refused(why));
        }
        self.last_try = Some(Instant::now());
        if let Err(e) = self.probe() {
            self.broken = Some(e.clone());
            return Err(refused(&e));
        }
        match self.reopen() {
            Ok(()) => {
                tracing::info!(data_dir = %self.data_dir.display(),
                    "the snapshot store writes again");
                self.broken = None;
                Ok(())
            }
            Err(e) => {
                self.broken = Some(e.clone());
                Err(refused(&e))
            }
        }
    }

    /// Writes, syncs and removes a file of [`PROBE_BYTES`] in the data folder.
    fn probe(&self) -> Result<(), String> {
        let path = self.data_dir.join(".borg-write-probe");
        let written = std::fs::File::create(&path).and_then(|mut file| {
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        written.map_err(|e| e.to_string())
    }

    /// Closes the database (once reads in flight let go of it) and opens it again.
    fn reopen(&self) -> Result<(), String> {
        // Empty after a reopen that failed halfway: then there is nothing to close.
        if let Some(mut old) = self.slot().take() {
            let deadline = Instant::now() + READERS_WAIT;
            let closed = loop {
                match Arc::try_unwrap(old) {
                    Ok(database) => break database,
                    Err(shared) if Instant::now() < deadline => {
                        old = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(shared) => {
                        *self.slot() = Some(shared);
                        return Err("reads kept the store busy; trying again".into());
                    }
                }
            };
            drop(closed);
        }
        let (database, _) = open_database(&self.data_dir).map_err(|e| e.to_string())?;
        *self.slot() = Some(Arc::new(database));
        Ok(())
    }
}
