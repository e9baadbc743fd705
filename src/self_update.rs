//! Self-update: when a release advances `PIPELINE_REPO` and that repository is borg's own
//! source, borg rebuilds itself and restarts into the new binary.
//!
//! # The flow
//!
//! 1. The release train calls [`trigger`] with the new commit of main (so can the control
//!    request `{"cmd":"self_update"}`, through [`trigger_head`]). It returns at once.
//! 2. A background task runs `SELF_UPDATE_BUILD_CMD` with `sh -c` in the main checkout of
//!    `PIPELINE_REPO` (a host process in a group of its own, killed after [`BUILD_TIMEOUT`];
//!    the last [`TAIL_BYTES`] of its output are kept for the report).
//! 3. A failed build (or a binary that does not run) is logged, announced to
//!    `PIPELINE_ADMIN_CHAT`, and changes nothing: `DATA_DIR/bin` is only touched after the
//!    new binary passed its check.
//! 4. On success `SELF_UPDATE_BINARY` is copied to `DATA_DIR/bin/borg-<commit>` (temporary
//!    name, checked with `<new> version` within [`CHECK_TIMEOUT`], then renamed, mode 755),
//!    the running binary is copied to `DATA_DIR/bin/borg-previous`, and older `borg-<commit>`
//!    files are removed. The daemon hears of the [`Ready`] binary through its [`Listener`].
//! 5. The daemon (`crate::daemon`) drains the agent slots (no new agent run; running ones get
//!    up to `AGENT_TIMEOUT_S`), shuts the tree down as on SIGTERM (every actor snapshots),
//!    closes the store and [`restart_into`] the new binary: same pid, same arguments and
//!    environment, plus [`FALLBACK_VAR`] and [`UPDATED_FROM_VAR`].
//! 6. If the new binary cannot start (its exec fails, or `borg run` fails before the daemon
//!    is up), the previous one is exec'd instead ([`fall_back`]) with [`FALLBACK_REASON_VAR`].
//!
//! # Decisions
//!
//! - Updates run one at a time. A trigger while one runs is queued; further triggers replace
//!   the queued commit (only the newest matters). When the queue is empty the last
//!   successful build is the one restarted into. Once a restart is under way, triggers are
//!   ignored: the next release builds them.
//! - The previous binary is read from `/proc/self/exe`, which still opens the running image
//!   when the build replaced or deleted the file borg was started from.
//! - The daemon is reached through a process-global that [`listen`] installs; with no
//!   daemon listening (tests of other parts), [`trigger`] only logs.
//! - Build output is kept in memory only (the tail), like a test command's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, SelfUpdate};

mod install;
mod restart;

pub use install::{UpdateError, update};
pub use restart::{announce, fall_back, report_start, restart_into, running_version};

/// The longest a build may take before it is killed.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest `<new binary> version` may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the build's output (its end) is kept for the report.
pub const TAIL_BYTES: usize = 16 * 1024;
/// Set on the new binary: the binary to exec if it cannot start.
pub const FALLBACK_VAR: &str = "BORG_FALLBACK";
/// Set on the previous binary when it was started as a fallback: why.
pub const FALLBACK_REASON_VAR: &str = "BORG_FALLBACK_REASON";
/// Set on the new binary: the version (and commit, if known) it was updated from.
pub const UPDATED_FROM_VAR: &str = "BORG_UPDATED_FROM";

/// A new binary, built, checked and installed, ready to restart into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The commit of `PIPELINE_REPO` it was built for.
    pub commit: String,
    /// `DATA_DIR/bin/borg-<short commit>`.
    pub binary: PathBuf,
    /// `DATA_DIR/bin/borg-previous`: a copy of the binary running now.
    pub previous: PathBuf,
}

/// Whether a release of `PIPELINE_REPO` rebuilds borg: `SELF_UPDATE=true`, or `auto` and
/// the repository's `Cargo.toml` names package `borg`. Never without a `PIPELINE_REPO`.
pub fn enabled(config: &Config) -> bool {
    match (config.self_update, &config.pipeline_repo) {
        (_, None) | (SelfUpdate::Off, _) => false,
        (SelfUpdate::On, Some(_)) => true,
        (SelfUpdate::Auto, Some(repo)) => is_borg_source(repo),
    }
}

/// Whether `repo/Cargo.toml` has `name = "borg"` in its `[package]` table.
pub fn is_borg_source(repo: &Path) -> bool {
    let Ok(manifest) = std::fs::read_to_string(repo.join("Cargo.toml")) else {
        return false;
    };
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line.split('#').next().map(str::trim) == Some("[package]");
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            let value = value.split('#').next().unwrap_or_default().trim();
            return value.trim_matches(['"', '\'']) == "borg";
        }
    }
    false
}

/// `DATA_DIR/bin`, where new and previous binaries are kept.
pub fn bin_dir(config: &Config) -> PathBuf {
    config.data_dir.join("bin")
}

/// The part of a commit id that names its binary: at most 12 hex digits.
pub fn short_commit(commit: &str) -> String {
    commit
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect()
}

/// The daemon's end: where [`Ready`] binaries arrive. Dropping it uninstalls it.
pub struct Listener {
    ready: mpsc::Receiver<Ready>,
    id: u64,
}

impl Listener {
    /// The next binary to restart into; never returns if self-update is off.
    pub async fn recv(&mut self) -> Ready {
        match self.ready.recv().await {
            Some(ready) => ready,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut current = lock(&UPDATER);
        if current.as_ref().is_some_and(|u| u.id == self.id) {
            *current = None;
        }
    }
}

/// Installs the daemon as the listener for new binaries, replacing any earlier one. Must be
/// called inside a tokio runtime: updates run on it.
pub fn listen(config: Arc<Config>) -> Listener {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (sender, ready) = mpsc::channel(1);
    let enabled = enabled(&config);
    if enabled {
        tracing::info!(
            "self-update on: a release of {} rebuilds borg with `{}`",
            config
                .pipeline_repo
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display(),
            config.self_update_build_cmd
        );
    }
    *lock(&UPDATER) = Some(Updater {
        id,
        config,
        enabled,
        runtime: tokio::runtime::Handle::current(),
        sender,
        queue: Arc::default(),
    });
    Listener { ready, id }
}

/// Asks for a rebuild for `commit`, the new head of `PIPELINE_REPO`'s main. Returns at once;
/// the update runs in the background (see the [module docs](self) for queueing).
pub fn trigger(commit: String) {
    let current = lock(&UPDATER);
    let Some(updater) = current.as_ref() else {
        tracing::info!(commit, "no daemon listens for self-updates: not rebuilding");
        return;
    };
    if !updater.enabled {
        tracing::debug!(commit, "self-update is off (SELF_UPDATE): not rebuilding");
        return;
    }
    let mut queue = lock(&updater.queue);
    if queue.restarting {
        tracing::info!(
            commit,
            "a restart into a new build is under way; not rebuilding"
        );
    } else if queue.running {
        tracing::info!(
            commit,
            "a self-update is running; this commit is built after it"
        );
        queue.next = Some(commit);
    } else {
        queue.running = true;
        let work = work(
            updater.config.clone(),
            updater.queue.clone(),
            updater.sender.clone(),
            commit,
        );
        updater.runtime.spawn(work);
    }
}

/// [`trigger`] for the current head of `PIPELINE_REPO`'s main; returns that commit, or why
/// nothing was triggered.
pub async fn trigger_head() -> Result<String, String> {
    let repo = {
        let current = lock(&UPDATER);
        let updater = current
            .as_ref()
            .ok_or("no daemon listens for self-updates")?;
        if !updater.enabled {
            return Err(
                "self-update is off: set SELF_UPDATE=true, or point PIPELINE_REPO at \
                        borg's source (SELF_UPDATE=auto)"
                    .into(),
            );
        }
        updater
            .config
            .pipeline_repo
            .clone()
            .ok_or("PIPELINE_REPO is not set")?
    };
    let commit = tokio::task::spawn_blocking(move || main_head(&repo))
        .await
        .map_err(|e| format!("reading main failed: {e}"))??;
    trigger(commit.clone());
    Ok(commit)
}

/// The commit `main` points at in `repo`.
pub fn main_head(repo: &Path) -> Result<String, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot read main of {}: {e}", repo.display());
    let opened = gix::open(repo).map_err(|e| cannot(&e))?;
    let main = format!("refs/heads/{}", crate::git::MAIN_BRANCH);
    let id = opened
        .rev_parse_single(main.as_str())
        .map_err(|e| cannot(&e))?;
    Ok(id.detach().to_string())
}

/// The installed daemon's side of [`trigger`].
struct Updater {
    id: u64,
    config: Arc<Config>,
    enabled: bool,
    runtime: tokio::runtime::Handle,
    sender: mpsc::Sender<Ready>,
    queue: Arc<Mutex<Queue>>,
}

/// What the updates are doing; the one place [`trigger`] and the worker agree on.
#[derive(Default)]
struct Queue {
    /// A worker is building.
    running: bool,
    /// The commit to build after the running one (the newest trigger).
    next: Option<String>,
    /// A ready binary went to the daemon, which is restarting.
    restarting: bool,
}

static UPDATER: Mutex<Option<Updater>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds `commit`, then every queued commit, and hands the last good build to the daemon.
async fn work(
    config: Arc<Config>,
    queue: Arc<Mutex<Queue>>,
    sender: mpsc::Sender<Ready>,
    mut commit: String,
) {
    let mut built = None;
    loop {
        match update(&config, &commit).await {
            Ok(ready) => built = Some(ready),
            Err(e) => {
                let short = short_commit(&commit);
                tracing::error!("self-update to {short} failed, borg keeps running: {e}");
                announce(
                    &config,
                    format!("self-update to {short} failed: {}", e.brief()),
                );
            }
        }
        let mut queue = lock(&queue);
        match queue.next.take() {
            Some(next) => commit = next,
            None => {
                queue.running = false;
                queue.restarting = built.is_some();
                break;
            }
        }
    }
    if let Some(ready) = built
        && sender.send(ready).await.is_err()
    {
        tracing::warn!("the daemon stopped listening; not restarting into the new build");
    }
}
