//! `borg run`: opens the store, starts the tree, and runs until SIGINT or SIGTERM, then shuts
//! the tree down in order (reverse start order, each child within its shutdown timeout).
//!
//! A self-update ends the run the same way, after a drain (no new agent run; running ones get
//! up to `AGENT_TIMEOUT_S`), and then replaces the process with the new binary (see
//! [`crate::self_update`]). A signal during the drain cancels the restart: borg was asked to
//! stop, so it stops.
//!
//! Under systemd (`NOTIFY_SOCKET` set) it reports readiness once the tree is up, has the root
//! supervisor ping the watchdog, and says when it stops or restarts (see [`crate::systemd`]).

use std::fmt;
use std::time::Instant;

use actors::slots::SlotsMsg;
use ractor::ActorRef;
use supervisors::{Introspection, SupervisorRef};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::self_update::{self, Ready};
use crate::store::Store;
use crate::systemd::{self, Notifier};
use crate::tree::{TreeArgs, root_spec};
use crate::wiring::SLOTS_NAME;

/// Why the daemon stopped other than by request.
#[derive(Debug)]
pub enum DaemonError {
    /// The data directory, the store or the tree could not be opened or started: the daemon
    /// never came up. The only variant returned before it did.
    Startup(String),
    /// The root supervisor gave up (restart intensity exceeded).
    RootFailed(String),
    /// The tree did not stop within `BORG_SHUTDOWN_TIMEOUT_S`.
    ShutdownTimedOut(u64),
    /// A self-update stopped the daemon, and neither the new binary nor the previous one
    /// could be started in its place.
    RestartFailed(String),
}

impl DaemonError {
    /// Whether the daemon failed before it was up (the case a self-update falls back on).
    pub fn before_start(&self) -> bool {
        matches!(self, Self::Startup(_))
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Startup(why) => write!(f, "cannot start: {why}"),
            Self::RootFailed(why) => write!(f, "the supervision tree failed: {why}"),
            Self::ShutdownTimedOut(s) => write!(
                f,
                "shutdown did not finish within {s} s (BORG_SHUTDOWN_TIMEOUT_S); exiting anyway"
            ),
            Self::RestartFailed(why) => write!(
                f,
                "self-update restart failed: {why}; start borg again by hand"
            ),
        }
    }
}

impl std::error::Error for DaemonError {}

/// Runs the daemon until a signal arrives or the tree fails; after a self-update, replaces
/// the process with the new binary and returns only if that fails.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let started = Instant::now();
    let notifier = Notifier::from_env().map(std::sync::Arc::new);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        DaemonError::Startup(format!(
            "cannot create DATA_DIR {}: {e}",
            config.data_dir.display()
        ))
    })?;
    // Opening verifies (and after a crash repairs) the file: blocking work, off the workers.
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .map_err(|e| DaemonError::Startup(e.to_string()))?
        .map_err(|e| DaemonError::Startup(e.to_string()))?;
    // Before the tree, so that every error after it is up is one of running, not of starting.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Startup(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Startup(e.to_string()))?;
    let introspection = Introspection::new();
    let config = std::sync::Arc::new(config);
    // A repository list the pipeline cannot use stops startup, like any bad setting.
    crate::pipeline::repos(&config).map_err(DaemonError::Startup)?;
    let (runners, sandbox) = crate::pipeline::runners(&config).await;
    tracing::info!("agents run in sandbox: {sandbox}");
    let spec = root_spec(TreeArgs {
        config: config.clone(),
        store: store.clone(),
        introspection: introspection.clone(),
        started,
        runners,
        sandbox,
    });
    let (root, mut join) = SupervisorRef::spawn_root("root", spec, introspection.clone())
        .await
        .map_err(|e| DaemonError::Startup(e.to_string()))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        actors = introspection.list().len(),
        "borg {} running",
        self_update::running_version()
    );
    self_update::report_start(&config);
    let mut updates = self_update::listen(config.clone());
    // Ready once everything a request may need is there (the tree, the self-update
    // listener), and after the log line above, so whoever waits for readiness finds it too.
    let status = format!(
        "borg {} running: {} actors",
        self_update::running_version(),
        introspection.list().len()
    );
    systemd::ready(notifier.as_ref(), &root, &status);

    let restart = tokio::select! {
        _ = term.recv() => {
            tracing::info!("SIGTERM: shutting down");
            None
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: shutting down");
            None
        }
        ready = updates.recv() => Some(ready),
        _ = &mut join => return Err(root_failed(&introspection, &store).await),
    };
    let restart = match restart {
        None => None,
        Some(ready) => {
            let text = format!(
                "borg restarts into {} ({}) once running agents finish",
                ready.binary.display(),
                self_update::short_commit(&ready.commit)
            );
            tracing::info!("{text}");
            self_update::announce(&config, text);
            tokio::select! {
                _ = drain(&config) => Some(ready),
                _ = term.recv() => {
                    tracing::info!("SIGTERM while draining: stopping, not restarting");
                    None
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT while draining: stopping, not restarting");
                    None
                }
                _ = &mut join => return Err(root_failed(&introspection, &store).await),
            }
        }
    };
    // Triggers from now on find no daemon and only log.
    drop(updates);

    let limit = config.shutdown_timeout();
    systemd::stopping(notifier.as_ref(), restart.is_some(), limit);
    let stopping = async {
        root.shutdown().await;
        let _ = (&mut join).await;
    };
    let stopped = tokio::time::timeout(limit, stopping).await.is_ok();
    match restart {
        None if !stopped => Err(DaemonError::ShutdownTimedOut(config.shutdown_timeout_s)),
        None => {
            tracing::info!("stopped cleanly after {:?}", started.elapsed());
            Ok(())
        }
        Some(ready) => Err(restart_into(&config, &store, &ready, stopped).await),
    }
}

/// Why the root supervisor stopped on its own; closes the store.
async fn root_failed(introspection: &Introspection, store: &Store) -> DaemonError {
    let why = introspection
        .recent_events()
        .into_iter()
        .rev()
        .find_map(|r| match r.event {
            supervisors::Event::Escalated { reason, .. } => Some(reason),
            _ => None,
        })
        .unwrap_or_else(|| "root supervisor stopped".into());
    store.close().await;
    DaemonError::RootFailed(why)
}

/// Stops new agent runs and waits, at most `AGENT_TIMEOUT_S`, for the running ones.
async fn drain(config: &Config) {
    let Some(slots) = ractor::registry::where_is(SLOTS_NAME) else {
        return;
    };
    let slots: ActorRef<SlotsMsg> = slots.into();
    tracing::info!(
        "draining: no new agent runs; waiting up to {} s (AGENT_TIMEOUT_S) for running ones",
        config.agent_timeout_s
    );
    match slots
        .call(SlotsMsg::Drain, Some(config.agent_timeout()))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(())) => tracing::info!("drained: no agent runs"),
        Ok(ractor::rpc::CallResult::Timeout) => {
            tracing::warn!("agents still run after AGENT_TIMEOUT_S; the shutdown stops them")
        }
        _ => tracing::warn!("the agent slots did not answer the drain; shutting down anyway"),
    }
}

/// The tree has stopped (or timed out stopping): closes the store and execs the new binary.
/// Returns only if neither it nor the previous binary could be started.
async fn restart_into(config: &Config, store: &Store, ready: &Ready, stopped: bool) -> DaemonError {
    if stopped {
        // Already closed by the store's keeper; this waits for that to be complete.
        store.close().await;
        tracing::info!(
            "stopped cleanly; restarting into {}",
            ready.binary.display()
        );
    } else {
        // Like a crash for the store, which the new binary's open repairs; better than
        // leaving borg down.
        tracing::warn!(
            "shutdown did not finish within {} s (BORG_SHUTDOWN_TIMEOUT_S); restarting anyway",
            config.shutdown_timeout_s
        );
    }
    DaemonError::RestartFailed(self_update::restart_into(ready))
}
