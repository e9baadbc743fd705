//! Logging through `tracing`: readable lines by default, JSON lines for a log collector
//! (`LOG_FORMAT=json`). `RUST_LOG` filters as usual; the default shows borg's info and
//! every crate's warnings. What passes the filter also goes to the [`feed`] the dashboard
//! shows (`/api/logs`).

pub mod feed;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// borg's info and everyone's warnings; not warp's report of each client that hangs up in
/// the middle of a response (every closed dashboard tab), which is no error of borg's.
const DEFAULT_FILTER: &str = "warn,borg=info,supervisors=info,actors=info,warp::server=off";

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.finish().with(feed::FeedLayer).try_init(),
        LogFormat::Json => builder.json().finish().with(feed::FeedLayer).try_init(),
    };
}
