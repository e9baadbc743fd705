//! Reading a store without a daemon and without writing: what `borg status` does when no
//! daemon answers. The file is opened read-only; one that was not shut down cleanly (after a
//! crash) is repaired in a scratch copy in the system's temporary folder, never in place, so
//! this works on a read-only `DATA_DIR` and never changes what a later `borg run` finds.

use std::fs;
use std::path::Path;

use redb::{DatabaseError, ReadableDatabase};

use super::KeyInfo;
use super::open::{
    FILE_NAME, OpenError, OpenErrorKind, Scratch, builder, check_magic, check_meta, database_error,
    guarded, guarded_raw,
};

/// Every key of the store in `data_dir`, in key order, read without writing to `data_dir`.
/// Blocking: call it from `spawn_blocking`.
pub fn peek(data_dir: &Path) -> Result<Vec<KeyInfo>, OpenError> {
    let path = data_dir.join(FILE_NAME);
    let err = |kind| OpenError {
        path: path.clone(),
        kind,
    };
    check_magic(&path).map_err(err)?;
    match guarded_raw(|| builder().open_read_only(&path)).map_err(err)? {
        Ok(db) => read_all(&db).map_err(err),
        // Not shut down cleanly: redb must repair it before anyone can read it.
        Err(DatabaseError::RepairAborted) => {
            let scratch = Scratch(
                std::env::temp_dir().join(format!("borg-status-{}.redb", std::process::id())),
            );
            fs::copy(&path, &scratch.0).map_err(|e| err(OpenErrorKind::Io(e)))?;
            let db = guarded(|| builder().open(&scratch.0)).map_err(err)?;
            read_all(&db).map_err(err)
        }
        Err(e) => Err(err(database_error(e))),
    }
}

fn read_all(db: &impl ReadableDatabase) -> Result<Vec<KeyInfo>, OpenErrorKind> {
    check_meta(db)?;
    super::list_keys(db).map_err(|e| OpenErrorKind::Corrupt(e.to_string()))
}
