//! The log feed: every log line the filter lets through, also kept for the dashboard
//! (`/api/logs`): a small ring of recent lines for a page that just opened, and a bounded
//! broadcast for pages that follow live.
//!
//! A tracing layer beside the formatter: it sees the same events (after `RUST_LOG`'s filter),
//! turns each into a [`LogLine`] and hands it on. Nothing here waits for a reader: the
//! broadcast drops the oldest line for a reader that falls [`LIVE_CAPACITY`] behind (the
//! reader is told, and the web layer ends its stream), and the ring keeps [`RECENT_LINES`].
//! Ring and broadcast are written under one lock, so a follower gets each line once.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept for a reader that just arrived.
pub const RECENT_LINES: usize = 500;
/// Lines a live reader may fall behind before it is told it lagged.
pub const LIVE_CAPACITY: usize = 1024;
/// A longer message is cut here.
const MESSAGE_BYTES: usize = 16 * 1024;

/// One log line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub seq: u64,
    pub at_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: &'static str,
    /// The module that logged it (`borg::daemon`, `supervisors::supervisor`).
    pub target: String,
    pub message: String,
    /// The event's other fields, as text.
    pub fields: BTreeMap<&'static str, String>,
}

/// The process-wide feed.
pub struct LogFeed {
    recent: Mutex<VecDeque<Arc<LogLine>>>,
    live: broadcast::Sender<Arc<LogLine>>,
    seq: AtomicU64,
}

static FEED: LazyLock<LogFeed> = LazyLock::new(|| LogFeed {
    recent: Mutex::new(VecDeque::with_capacity(RECENT_LINES)),
    live: broadcast::channel(LIVE_CAPACITY).0,
    seq: AtomicU64::new(0),
});

/// The feed every [`FeedLayer`] writes to.
pub fn feed() -> &'static LogFeed {
    &FEED
}

impl LogFeed {
    fn recent_lines(&self) -> MutexGuard<'_, VecDeque<Arc<LogLine>>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line (the layer does this for every event).
    pub fn push(&self, mut line: LogLine) {
        let mut recent = self.recent_lines();
        line.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let line = Arc::new(line);
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line.clone());
        // Nobody following is fine: the ring still holds the line.
        let _ = self.live.send(line);
    }

    /// The recent lines, oldest first.
    pub fn recent(&self) -> Vec<Arc<LogLine>> {
        self.recent_lines().iter().cloned().collect()
    }

    /// The recent lines and a live feed of every line after them.
    pub fn follow(&self) -> (Vec<Arc<LogLine>>, broadcast::Receiver<Arc<LogLine>>) {
        let recent = self.recent_lines();
        (recent.iter().cloned().collect(), self.live.subscribe())
    }
}

/// The tracing layer that feeds [`feed()`].
pub struct FeedLayer;

impl<S: Subscriber> Layer<S> for FeedLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let mut message = visitor.message;
        if message.len() > MESSAGE_BYTES {
            let mut end = MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        feed().push(LogLine {
            seq: 0,
            at_ms: supervisors::snapshot::now_ms(),
            level: level_name(meta.level()),
            target: meta.target().to_owned(),
            message,
            fields: visitor.fields,
        });
    }
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<&'static str, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.insert(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields.insert(field.name(), format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_become_lines_with_their_fields() {
        let subscriber = tracing_subscriber::registry().with(FeedLayer);
        let (_, mut live) = feed().follow();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(task = 7, phase = %"impl", "the agent said {}", "hello");
        });
        let line = loop {
            // Other tests of this binary may log through the same feed meanwhile.
            let line = live.try_recv().unwrap();
            if line.fields.get("task").map(String::as_str) == Some("7") {
                break line;
            }
        };
        assert_eq!(line.level, "warn");
        assert_eq!(line.message, "the agent said hello");
        assert_eq!(line.fields["phase"], "impl");
        assert!(line.target.contains("feed"), "{}", line.target);
        assert!(feed().recent().iter().any(|l| l.seq == line.seq));
    }
}
