//! Store metrics: plain atomics the writer thread bumps once per commit, read by anyone.
//!
//! They are counters for the dashboard, not a synchronisation mechanism, so every access is
//! `Relaxed`: a reader may see `commits` one ahead of `snapshots_written`, which no figure on a
//! dashboard cares about. Commit latencies go into a ring of the last [`LATENCY_WINDOW`] commits
//! so that `stats()` can report exact recent percentiles without a lock on the writer's path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How many recent commits the latency percentiles are computed over.
pub const LATENCY_WINDOW: usize = 1024;

/// A point-in-time copy of the store's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStatsSnapshot {
    /// Successful commits since open.
    pub commits: u64,
    /// Commits that failed; every request in them got `StoreError::Backend`.
    pub failed_commits: u64,
    /// Saves made durable since open.
    pub snapshots_written: u64,
    /// Claims made durable since open.
    pub claims: u64,
    /// Removes made durable since open.
    pub removes: u64,
    /// Saves and removes refused because a newer incarnation owns the key.
    pub stale_rejections: u64,
    /// Requests in the most recent batch (committed or failed).
    pub last_batch_size: u64,
    /// The largest batch so far.
    pub max_batch_size: u64,
    /// Snapshot bytes made durable since open.
    pub bytes_written: u64,
    /// Duration of the most recent commit (apply + fsync), in microseconds.
    pub last_commit_micros: u64,
    /// Median commit duration over the last [`LATENCY_WINDOW`] commits, in microseconds.
    pub commit_p50_micros: u64,
    /// 99th percentile commit duration over the same window, in microseconds.
    pub commit_p99_micros: u64,
    /// Sum of all commit durations, for an average over the whole run.
    pub commit_micros_total: u64,
}

/// The live counters behind [`StoreStatsSnapshot`].
#[derive(Debug)]
pub(crate) struct Metrics {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    snapshots_written: AtomicU64,
    claims: AtomicU64,
    removes: AtomicU64,
    stale_rejections: AtomicU64,
    last_batch_size: AtomicU64,
    max_batch_size: AtomicU64,
    bytes_written: AtomicU64,
    last_commit_micros: AtomicU64,
    commit_micros_total: AtomicU64,
    /// Recent commit durations in microseconds (saturating at u32::MAX, ~71 minutes).
    latencies: Box<[AtomicU32]>,
    /// Commits recorded in `latencies`; the next slot is `recorded % LATENCY_WINDOW`.
    recorded: AtomicU64,
}

/// What one batch did, reported by the writer after its commit attempt.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchOutcome {
    pub requests: u64,
    pub saves: u64,
    pub claims: u64,
    pub removes: u64,
    pub stale: u64,
    pub bytes: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            snapshots_written: AtomicU64::new(0),
            claims: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            stale_rejections: AtomicU64::new(0),
            last_batch_size: AtomicU64::new(0),
            max_batch_size: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            last_commit_micros: AtomicU64::new(0),
            commit_micros_total: AtomicU64::new(0),
            latencies: (0..LATENCY_WINDOW).map(|_| AtomicU32::new(0)).collect(),
            recorded: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records a batch whose commit succeeded.
    pub(crate) fn committed(&self, outcome: BatchOutcome, took: Duration) {
        self.batch(outcome.requests);
        self.commits.fetch_add(1, Relaxed);
        self.snapshots_written.fetch_add(outcome.saves, Relaxed);
        self.claims.fetch_add(outcome.claims, Relaxed);
        self.removes.fetch_add(outcome.removes, Relaxed);
        self.stale_rejections.fetch_add(outcome.stale, Relaxed);
        self.bytes_written.fetch_add(outcome.bytes, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_commit_micros.store(micros, Relaxed);
        self.commit_micros_total.fetch_add(micros, Relaxed);
        let slot = self.recorded.load(Relaxed) as usize % LATENCY_WINDOW;
        self.latencies[slot].store(u32::try_from(micros).unwrap_or(u32::MAX), Relaxed);
        // Only the writer thread records, so a load + store is not a lost update.
        self.recorded.fetch_add(1, Relaxed);
    }

    /// Records a batch whose commit failed.
    pub(crate) fn failed(&self, requests: u64) {
        self.batch(requests);
        self.failed_commits.fetch_add(1, Relaxed);
    }

    fn batch(&self, requests: u64) {
        self.last_batch_size.store(requests, Relaxed);
        self.max_batch_size.fetch_max(requests, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreStatsSnapshot {
        let recorded = (self.recorded.load(Relaxed) as usize).min(LATENCY_WINDOW);
        let mut window: Vec<u32> = self.latencies[..recorded]
            .iter()
            .map(|a| a.load(Relaxed))
            .collect();
        window.sort_unstable();
        let pct = |p: usize| -> u64 {
            if window.is_empty() {
                0
            } else {
                u64::from(window[(window.len() - 1) * p / 100])
            }
        };
        StoreStatsSnapshot {
            commits: self.commits.load(Relaxed),
            failed_commits: self.failed_commits.load(Relaxed),
            snapshots_written: self.snapshots_written.load(Relaxed),
            claims: self.claims.load(Relaxed),
            removes: self.removes.load(Relaxed),
            stale_rejections: self.stale_rejections.load(Relaxed),
            last_batch_size: self.last_batch_size.load(Relaxed),
            max_batch_size: self.max_batch_size.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            last_commit_micros: self.last_commit_micros.load(Relaxed),
            commit_p50_micros: pct(50),
            commit_p99_micros: pct(99),
            commit_micros_total: self.commit_micros_total.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_cover_the_recent_window_only() {
        let m = Metrics::default();
        let one = BatchOutcome {
            requests: 1,
            saves: 1,
            bytes: 10,
            ..BatchOutcome::default()
        };
        // An old slow era, then a full window of fast commits: the slow ones must age out.
        for _ in 0..10 {
            m.committed(one, Duration::from_millis(500));
        }
        for i in 0..LATENCY_WINDOW as u64 {
            m.committed(one, Duration::from_micros(100 + i % 100));
        }
        let s = m.snapshot();
        assert_eq!(s.commits, 10 + LATENCY_WINDOW as u64);
        assert_eq!(s.snapshots_written, s.commits);
        assert_eq!(s.bytes_written, 10 * s.commits);
        assert!((140..=160).contains(&s.commit_p50_micros), "{s:?}");
        assert!((190..200).contains(&s.commit_p99_micros), "{s:?}");
    }

    #[test]
    fn failed_batches_count_apart() {
        let m = Metrics::default();
        m.failed(7);
        let s = m.snapshot();
        assert_eq!((s.commits, s.failed_commits, s.last_batch_size), (0, 1, 7));
        assert_eq!(s.commit_p99_micros, 0);
    }
}
