//! The host checks of `borg doctor`: DATA_DIR (writable, free space), the store in it, and
//! the web port. The data-folder probe writes and removes one empty file; nothing else writes.

use std::path::Path;

use super::Check;
use crate::backup::{BackupError, in_use, verify_file};
use crate::config::Config;
use crate::store::FILE_NAME;

/// Below this much free space in DATA_DIR, warn.
const LOW_SPACE_MB: u128 = 1024;

/// DATA_DIR (or the folder it will be created in) is writable, with the free space shown.
pub(super) fn data_dir(dir: &Path) -> Check {
    const NAME: &str = "data folder";
    let fix = "make it writable for the user borg runs as (chown/chmod), or set DATA_DIR to a \
               writable folder";
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Check::fail(
            NAME,
            format!("{} is a file, not a folder", existing.display()),
            "set DATA_DIR to a folder",
        );
    }
    let probe = existing.join(format!(".borg-doctor-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    if let Err(e) = written {
        return Check::fail(
            NAME,
            format!("{} is not writable ({e})", existing.display()),
            fix,
        );
    }
    _ = std::fs::remove_file(&probe);
    let created = if existing == dir {
        String::new()
    } else {
        format!(" (created at the first start, in {})", existing.display())
    };
    let free_mb = match nix::sys::statvfs::statvfs(existing) {
        Ok(s) => (u128::from(s.blocks_available()) * u128::from(s.fragment_size())) >> 20,
        Err(e) => {
            return Check::warn(
                NAME,
                format!(
                    "{} writable{created}; free space unknown ({e})",
                    dir.display()
                ),
                "check the free space with `df`",
            );
        }
    };
    let detail = format!("{} writable{created}, {free_mb} MB free", dir.display());
    if free_mb < LOW_SPACE_MB {
        Check::warn(
            NAME,
            detail,
            "free some space: snapshots, worktrees and agent homes grow, and a full disk stops \
             borg saving its state",
        )
    } else {
        Check::ok(NAME, detail)
    }
}

/// The store, if there is one yet: one this build opens (or in use by the running daemon).
pub(super) async fn store(data_dir: &Path) -> Check {
    const NAME: &str = "store";
    let file = data_dir.join(FILE_NAME);
    if !file.exists() {
        return Check::ok(
            NAME,
            format!("none yet; `borg run` creates {}", file.display()),
        );
    }
    if in_use(&file) {
        return Check::ok(NAME, format!("{} (open in a running borg)", file.display()));
    }
    let at = file.clone();
    let checked = tokio::task::spawn_blocking(move || verify_file(&at, &mut |_| {})).await;
    let away = "move it away (borg never modifies a file it does not recognise), put a backup \
                back with `borg restore`, or set DATA_DIR to another folder";
    match checked {
        Ok(Ok(s)) => Check::ok(
            NAME,
            format!(
                "{} (format {}, {} keys, {} snapshots)",
                file.display(),
                s.format,
                s.keys,
                s.snapshots
            ),
        ),
        Ok(Err(BackupError::Unclean(_))) => Check::ok(
            NAME,
            format!(
                "{} (not shut down cleanly; `borg run` repairs it at start)",
                file.display()
            ),
        ),
        Ok(Err(e @ BackupError::NewerFormat { .. })) => Check::fail(
            NAME,
            e.to_string(),
            "upgrade borg, or set DATA_DIR to another folder",
        ),
        Ok(Err(e)) => Check::fail(NAME, e.to_string(), away),
        Err(e) => Check::fail(NAME, format!("the check stopped: {e}"), "run it again"),
    }
}

/// `WEB_BIND:WEB_PORT` is free, or held by the borg daemon of this DATA_DIR.
pub(super) async fn web_port(config: &Config) -> Check {
    const NAME: &str = "web port";
    let addr = config.web_addr();
    let error = match std::net::TcpListener::bind(addr) {
        Ok(_) => return Check::ok(NAME, format!("{addr} is free")),
        Err(e) => e,
    };
    if let Some(report) = crate::control::query(&config.data_dir).await {
        return Check::ok(
            NAME,
            format!("{addr} is held by the running borg (pid {})", report["pid"]),
        );
    }
    let fix = match error.kind() {
        std::io::ErrorKind::AddrNotAvailable => {
            "set WEB_BIND to an address of this machine (127.0.0.1, or 0.0.0.0 for all)".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: set WEB_PORT to 1024 or above".into()
        }
        _ => format!(
            "stop the program listening there (`ss -ltnp 'sport = :{}'` names it), or set \
             WEB_PORT to a free port",
            addr.port()
        ),
    };
    Check::fail(NAME, format!("cannot listen on {addr}: {error}"), fix)
}
