//! `borg run`: opens the store, starts the tree, and runs until SIGINT or SIGTERM, then shuts
//! the tree down in order (reverse start order, each child within its shutdown timeout).

use std::fmt;
use std::time::Instant;

use supervisors::{Introspection, SupervisorRef};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::store::Store;
use crate::tree::{TreeArgs, root_spec};

/// Why the daemon stopped other than by request.
#[derive(Debug)]
pub enum DaemonError {
    /// The data directory or the store could not be opened; nothing was started.
    Startup(String),
    /// The root supervisor gave up (restart intensity exceeded).
    RootFailed(String),
    /// The tree did not stop within `BORG_SHUTDOWN_TIMEOUT_S`.
    ShutdownTimedOut(u64),
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
        }
    }
}

impl std::error::Error for DaemonError {}

/// Runs the daemon until a signal arrives or the tree fails.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let started = Instant::now();
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
        env!("CARGO_PKG_VERSION")
    );

    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Startup(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Startup(e.to_string()))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = &mut join => {
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
            return Err(DaemonError::RootFailed(why));
        }
    }

    let limit = config.shutdown_timeout();
    let stopping = async {
        root.shutdown().await;
        let _ = (&mut join).await;
    };
    if tokio::time::timeout(limit, stopping).await.is_err() {
        return Err(DaemonError::ShutdownTimedOut(config.shutdown_timeout_s));
    }
    tracing::info!("stopped cleanly after {:?}", started.elapsed());
    Ok(())
}
