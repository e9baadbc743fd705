//! One self-update's work: build, check, install. Nothing in `DATA_DIR/bin` changes unless
//! the build succeeded and the new binary answered `version`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use super::{BUILD_TIMEOUT, CHECK_TIMEOUT, Ready, TAIL_BYTES, bin_dir, short_commit};
use crate::claude::process::OutputTail;
use crate::config::Config;

/// Why a self-update did not produce a binary. Nothing was changed in any case.
#[derive(Debug)]
pub enum UpdateError {
    /// `PIPELINE_REPO` is not set.
    NoRepo,
    /// `sh` could not be started.
    Spawn(String),
    /// The build command failed: how it ended, and the end of its output.
    Build { status: String, tail: String },
    /// The build ran past [`BUILD_TIMEOUT`] and was killed.
    TimedOut { tail: String },
    /// The build succeeded but its binary could not be copied or kept.
    Install(String),
    /// The new binary did not answer `version` successfully.
    Check(String),
}

impl UpdateError {
    /// One short paragraph for a chat: the output tail cut to its last lines.
    pub fn brief(&self) -> String {
        let text = self.to_string();
        match text.char_indices().rev().nth(1500) {
            Some((at, _)) => format!("…{}", &text[at..]),
            None => text,
        }
    }
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRepo => f.write_str("PIPELINE_REPO is not set: nothing to build"),
            Self::Spawn(why) => write!(f, "cannot run SELF_UPDATE_BUILD_CMD: {why}"),
            Self::Build { status, tail } => write!(
                f,
                "SELF_UPDATE_BUILD_CMD failed ({status}); fix the build or the command. \
                 Output:\n{tail}"
            ),
            Self::TimedOut { tail } => write!(
                f,
                "SELF_UPDATE_BUILD_CMD ran longer than {} min and was killed. Output:\n{tail}",
                BUILD_TIMEOUT.as_secs() / 60
            ),
            Self::Install(why) => write!(f, "cannot install the new binary: {why}"),
            Self::Check(why) => write!(f, "the new binary does not run: {why}"),
        }
    }
}

impl std::error::Error for UpdateError {}

/// Builds `commit` in `PIPELINE_REPO` with `SELF_UPDATE_BUILD_CMD`, checks the binary and
/// installs it as `DATA_DIR/bin/borg-<short commit>`, with the running binary kept as
/// `DATA_DIR/bin/borg-previous`. Does not restart anything.
pub async fn update(config: &Config, commit: &str) -> Result<Ready, UpdateError> {
    let repo = config.pipeline_repo.as_deref().ok_or(UpdateError::NoRepo)?;
    let short = short_commit(commit);
    tracing::info!(
        "self-update: building {short} with `{}` in {}",
        config.self_update_build_cmd,
        repo.display()
    );
    build(&config.self_update_build_cmd, repo, BUILD_TIMEOUT).await?;

    let bin = bin_dir(config);
    let install =
        |e: std::io::Error, what: &Path| UpdateError::Install(format!("{}: {e}", what.display()));
    tokio::fs::create_dir_all(&bin)
        .await
        .map_err(|e| install(e, &bin))?;
    let binary = bin.join(format!("borg-{short}"));
    let staged = copy_staged(&config.self_update_binary, &binary).await?;
    if let Err(e) = check(&staged).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(e);
    }
    // /proc/self/exe opens the running image even if the build replaced its file.
    let running = if Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().map_err(|e| install(e, Path::new("current_exe")))?
    };
    let previous = bin.join("borg-previous");
    let kept = copy_staged(&running, &previous).await;
    let kept = match kept {
        Ok(kept) => tokio::fs::rename(&kept, &previous)
            .await
            .map_err(|e| install(e, &previous)),
        Err(e) => Err(e),
    };
    if let Err(e) = kept {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(e);
    }
    tokio::fs::rename(&staged, &binary)
        .await
        .map_err(|e| install(e, &binary))?;
    prune(&bin, &binary).await;
    tracing::info!("self-update: {} is built and answers", binary.display());
    Ok(Ready {
        commit: commit.to_owned(),
        binary,
        previous,
    })
}

/// Runs `command` with `sh -c` in `dir`, in a process group of its own that is killed at
/// `limit`. stdout and stderr are interleaved into one tail of [`TAIL_BYTES`].
pub(super) async fn build(command: &str, dir: &Path, limit: Duration) -> Result<(), UpdateError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        // The variables of borg's own restart are not the build's business.
        .env_remove(super::FALLBACK_VAR)
        .env_remove(super::FALLBACK_REASON_VAR)
        .env_remove(super::UPDATED_FROM_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| UpdateError::Spawn(format!("sh in {}: {e}", dir.display())))?;
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    let tail = OutputTail::new(TAIL_BYTES);
    let readers = [
        child.stdout.take().map(|s| tail.follow(s)),
        child.stderr.take().map(|s| tail.follow(s)),
    ];
    let ended = tokio::time::timeout(limit, child.wait()).await;
    if ended.is_err()
        && let Some(group) = group
    {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // A process the build left in the background may hold the pipes open: don't wait for it.
    for mut reader in readers.into_iter().flatten() {
        if tokio::time::timeout(Duration::from_secs(2), &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
    let tail = tail.text();
    match ended {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(UpdateError::Build {
            status: status.to_string(),
            tail,
        }),
        Ok(Err(e)) => Err(UpdateError::Spawn(format!("waiting for sh: {e}"))),
        Err(_) => Err(UpdateError::TimedOut { tail }),
    }
}

/// Copies `from` next to `to` under a temporary name, mode 755; returns that name.
async fn copy_staged(from: &Path, to: &Path) -> Result<PathBuf, UpdateError> {
    use std::os::unix::fs::PermissionsExt;
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let staged = to.with_file_name(format!(".{name}.new"));
    let copied = async {
        tokio::fs::copy(from, &staged).await?;
        let mode = std::fs::Permissions::from_mode(0o755);
        tokio::fs::set_permissions(&staged, mode).await
    };
    match copied.await {
        Ok(()) => Ok(staged),
        Err(e) => {
            let _ = tokio::fs::remove_file(&staged).await;
            Err(UpdateError::Install(format!(
                "copying {} to {}: {e} (is SELF_UPDATE_BINARY what the build produces?)",
                from.display(),
                staged.display()
            )))
        }
    }
}

/// `binary version` must exit 0 within [`CHECK_TIMEOUT`].
async fn check(binary: &Path) -> Result<(), UpdateError> {
    let mut attempts = 0;
    let output = loop {
        let run = Command::new(binary)
            .arg("version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            // A process forked elsewhere in borg while the file was open for writing holds
            // it open for an instant ("text file busy"): try again.
            Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Ok(output)) => break output,
            Ok(Err(e)) => return Err(UpdateError::Check(format!("`version`: {e}"))),
            Err(_) => {
                return Err(UpdateError::Check(format!(
                    "`version` did not finish within {} s",
                    CHECK_TIMEOUT.as_secs()
                )));
            }
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = &stderr[stderr.floor_char_boundary(stderr.len().saturating_sub(2000))..];
    Err(UpdateError::Check(format!(
        "`version` ended with {}: {stderr}",
        output.status
    )))
}

/// Removes the `borg-<commit>` binaries of earlier updates; `borg-previous` stays.
async fn prune(bin: &Path, keep: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(bin).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("borg-") && name != "borg-previous" && entry.path() != keep {
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) => tracing::debug!("removed the old binary {name}"),
                Err(e) => tracing::warn!("cannot remove the old binary {name}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_build_past_its_time_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        // The background sleep holds the output pipes: only the group kill ends it.
        let command = "echo compiling; sleep 30 & sleep 30";
        let outcome = build(command, dir.path(), Duration::from_millis(300)).await;
        match outcome {
            Err(UpdateError::TimedOut { tail }) => assert_eq!(tail, "compiling\n"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
