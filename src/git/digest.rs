//! A digest over files of a working tree, to notice edits to frozen files (tests an agent must
//! not touch), and the check every caller-given path passes first.
//!
//! The digest is SHA-1 (what gix already carries) over an unambiguous encoding: each path
//! (sorted, deduplicated) with its length, then what is there: missing, a regular file (its
//! executable bit and content), a symlink (its target, never followed), or a folder (its
//! entries, sorted, recursively, without `.git`). A path below a symlinked folder hashes as
//! such, not as what the link points at: the walk never leaves the working tree.

use std::collections::BTreeSet;
use std::fs::Metadata;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

/// Node tags of the encoding.
const MISSING: u8 = b'M';
const FILE: u8 = b'F';
const EXECUTABLE: u8 = b'X';
const SYMLINK: u8 = b'L';
const FOLDER: u8 = b'D';
const OTHER: u8 = b'O';
const BEYOND_SYMLINK: u8 = b'B';

/// `path` if it is a plain relative path inside a working tree: not empty, not absolute, no
/// `.` or `..` component, not inside `.git`.
pub fn checked_path(path: &str) -> Result<&Path, String> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && !path.contains('\0')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && p.components().next() != Some(Component::Normal(".git".as_ref()));
    if plain {
        Ok(p)
    } else {
        Err(format!(
            "path {path:?} is not a relative path inside the worktree (no leading /, no . or .., \
             not in .git)"
        ))
    }
}

/// True when a folder on the way from `root` to `root/rel` is a symlink: `rel` then lies
/// outside what the working tree holds.
pub fn beyond_symlink(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            return false;
        }
        at.push(component);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// The hex digest of `paths` in the working tree `root`.
pub fn hash_files(root: &Path, paths: &[String]) -> Result<String, String> {
    let mut unique = BTreeSet::new();
    for path in paths {
        unique.insert(checked_path(path)?);
    }
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    for rel in unique {
        put_bytes(&mut hasher, rel.as_os_str().as_bytes());
        if beyond_symlink(root, rel) {
            hasher.update(&[BEYOND_SYMLINK]);
            continue;
        }
        hash_node(&mut hasher, &root.join(rel))?;
    }
    hasher
        .try_finalize()
        .map(|id| id.to_string())
        .map_err(|e| format!("digest: {e}"))
}

fn hash_node(hasher: &mut gix::hash::Hasher, path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            hasher.update(&[MISSING]);
            return Ok(());
        }
        Err(e) => return Err(read_error(path, e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| read_error(path, e))?;
        hasher.update(&[SYMLINK]);
        put_bytes(hasher, target.as_os_str().as_bytes());
    } else if kind.is_file() {
        hash_file(hasher, path, &meta)?;
    } else if kind.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| read_error(path, e))? {
            let name = entry.map_err(|e| read_error(path, e))?.file_name();
            if name != ".git" {
                names.push(name);
            }
        }
        names.sort();
        hasher.update(&[FOLDER]);
        hasher.update(&(names.len() as u64).to_le_bytes());
        for name in names {
            put_bytes(hasher, name.as_bytes());
            hash_node(hasher, &path.join(name))?;
        }
    } else {
        hasher.update(&[OTHER]);
    }
    Ok(())
}

fn hash_file(hasher: &mut gix::hash::Hasher, path: &Path, meta: &Metadata) -> Result<(), String> {
    let executable = meta.permissions().mode() & 0o111 != 0;
    hasher.update(&[if executable { EXECUTABLE } else { FILE }]);
    hasher.update(&meta.len().to_le_bytes());
    let mut file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buffer[..n]);
    }
    // The length went in first; a file that changed size while read must still hash as
    // something no other content gives.
    hasher.update(&read.to_le_bytes());
    Ok(())
}

/// Length-prefixed, so no two sequences of names encode alike.
fn put_bytes(hasher: &mut gix::hash::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn read_error(path: &Path, e: std::io::Error) -> String {
    format!("read {}: {e}", path.display())
}
