//! The `borg backup` and `borg restore` commands: through the running daemon when there is
//! one, with a key counter on a terminal, and messages that say what to do.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{BackupError, Progress, backup_offline, copy, restore};
use crate::config::Config;
use crate::store::{FILE_NAME, OpenError, OpenErrorKind};

/// Prints `copied N keys` on stderr now and then, when stderr is a terminal.
fn counter(what: &'static str) -> Progress {
    let tty = io::stderr().is_terminal();
    let mut shown = Instant::now();
    Box::new(move |n| {
        if tty && shown.elapsed() >= Duration::from_millis(200) {
            shown = Instant::now();
            eprint!("\r  {what} {n} keys…");
            _ = io::stderr().flush();
        }
    })
}

fn fail(why: impl fmt::Display) -> ExitCode {
    eprintln!("borg: {why}");
    ExitCode::FAILURE
}

/// `borg backup <file>`: through the running daemon, else directly.
pub async fn backup_command(config: &Config, file: &Path, force: bool) -> ExitCode {
    let target = match std::path::absolute(file) {
        Ok(path) => path,
        Err(e) => return fail(format!("{}: {e}", file.display())),
    };
    let live = config.data_dir.join(FILE_NAME);
    if let Err(e) = copy::check_target(&live, &target, force) {
        return fail(e);
    }
    let request = json!({"cmd": "backup", "path": target, "force": force});
    if io::stderr().is_terminal() {
        eprintln!("  backing up {} …", live.display());
    }
    if let Some(answer) = crate::control::request(&config.data_dir, &request).await {
        if answer["ok"] != json!(true) {
            return fail(
                answer["error"]
                    .as_str()
                    .unwrap_or("the daemon refused the backup"),
            );
        }
        let b = &answer["backup"];
        println!(
            "backup written to {} through the running daemon: {} keys in {} tables, {} KB",
            target.display(),
            b["keys"],
            b["tables"],
            b["bytes"].as_u64().unwrap_or(0) / 1024
        );
        return ExitCode::SUCCESS;
    }
    match backup_offline(&config.data_dir, &target, force, counter("copied")).await {
        Ok(b) => {
            end_counter();
            println!(
                "backup written to {}: {} keys in {} tables, {} KB",
                target.display(),
                b.keys,
                b.tables,
                b.bytes / 1024
            );
            ExitCode::SUCCESS
        }
        Err(BackupError::Open(OpenError {
            kind: OpenErrorKind::Locked,
            ..
        })) => {
            end_counter();
            fail(
                "a borg daemon holds the store but does not answer on its control socket (still \
                 starting, or stopping); try again in a moment",
            )
        }
        Err(e) => {
            end_counter();
            fail(e)
        }
    }
}

/// `borg restore <file>`: refused while a daemon answers on the control socket.
pub async fn restore_command(config: &Config, file: &Path, force: bool) -> ExitCode {
    if crate::control::query(&config.data_dir).await.is_some() {
        return fail(BackupError::DaemonRunning(config.data_dir.clone()));
    }
    let (dir, file) = (config.data_dir.clone(), file.to_owned());
    let done =
        tokio::task::spawn_blocking(move || restore(&dir, &file, force, counter("checked"))).await;
    end_counter();
    match done {
        Ok(Ok(r)) => {
            println!(
                "restored {} ({} keys, {} snapshots, store format {})",
                r.store.display(),
                r.contents.keys,
                r.contents.snapshots,
                r.contents.format
            );
            if let Some(previous) = r.previous {
                println!("the store it replaced is kept as {}", previous.display());
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(e),
        Err(e) => fail(format!("the restore stopped: {e}")),
    }
}

fn end_counter() {
    if io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}
