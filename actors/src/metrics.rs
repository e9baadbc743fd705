//! Process-wide counters for what no actor keeps a record of: agent runs (how many, how they
//! ended, how long they took, what the CLI said they cost) and chat messages that trigger the
//! assistant. `/metrics` renders them in Prometheus' text format.
//!
//! Plain relaxed atomics in statics: recording is a handful of uncontended `fetch_add`s, cheap
//! enough for any call site, and a reader may see one counter a step ahead of another, which
//! no dashboard cares about. Durations go into a fixed histogram (Prometheus' `le` buckets),
//! cost into micro-dollars so it stays an integer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::agent::AgentOutcome;

/// Who an agent run was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// A pipeline task's phase.
    Task,
    /// A chat group's answer.
    Chat,
}

impl AgentKind {
    pub const ALL: [AgentKind; 2] = [AgentKind::Task, AgentKind::Chat];

    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Task => "task",
            AgentKind::Chat => "chat",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the run-duration histogram's buckets; `+Inf` is implied.
pub const DURATION_BUCKETS_S: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// One kind's counters.
#[derive(Default)]
struct Runs {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Runs per bucket, not cumulative (the last slot is `+Inf`).
    buckets: [AtomicU64; DURATION_BUCKETS_S.len() + 1],
    micros: AtomicU64,
    cost_micro_usd: AtomicU64,
}

static RUNS: [Runs; 2] = [const { new_runs() }, const { new_runs() }];
static CHAT_MESSAGES: AtomicU64 = AtomicU64::new(0);
static CHAT_TRIGGERS: AtomicU64 = AtomicU64::new(0);
static GATE_OPEN: AtomicU64 = AtomicU64::new(0);
static GATE_TRIPS: AtomicU64 = AtomicU64::new(0);

const fn new_runs() -> Runs {
    Runs {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        buckets: [const { AtomicU64::new(0) }; DURATION_BUCKETS_S.len() + 1],
        micros: AtomicU64::new(0),
        cost_micro_usd: AtomicU64::new(0),
    }
}

/// Records one finished agent run of `kind` that took `took`.
pub fn agent_run(kind: AgentKind, took: Duration, outcome: &AgentOutcome) {
    let runs = &RUNS[kind.index()];
    match outcome.error {
        None => runs.ok.fetch_add(1, Relaxed),
        Some(_) => runs.failed.fetch_add(1, Relaxed),
    };
    let secs = took.as_secs_f64();
    let bucket = DURATION_BUCKETS_S
        .iter()
        .position(|le| secs <= *le)
        .unwrap_or(DURATION_BUCKETS_S.len());
    runs.buckets[bucket].fetch_add(1, Relaxed);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    runs.micros.fetch_add(micros, Relaxed);
    if let Some(cost) = outcome.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
        runs.cost_micro_usd
            .fetch_add((cost * 1_000_000.0).round() as u64, Relaxed);
    }
}

/// Records a finished pipeline task's agent run.
pub fn task_run(took: Duration, outcome: &AgentOutcome) {
    agent_run(AgentKind::Task, took, outcome);
}

/// Records a finished chat group's agent run.
pub fn chat_run(took: Duration, outcome: &AgentOutcome) {
    agent_run(AgentKind::Chat, took, outcome);
}

/// Counts a chat message a group took in, and whether it triggered the assistant.
pub fn chat_message(trigger: bool) {
    CHAT_MESSAGES.fetch_add(1, Relaxed);
    if trigger {
        CHAT_TRIGGERS.fetch_add(1, Relaxed);
    }
}

/// The pipeline's sandbox gate opened (`true`) or closed ([`crate::pipeline::gate`]).
pub fn sandbox_gate(open: bool) {
    GATE_OPEN.store(u64::from(open), Relaxed);
    if open {
        GATE_TRIPS.fetch_add(1, Relaxed);
    }
}

/// A copy of one kind's run counters.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRunStats {
    pub kind: AgentKind,
    pub ok: u64,
    pub failed: u64,
    /// Cumulative counts per bucket of [`DURATION_BUCKETS_S`], then `+Inf` (= every run).
    pub cumulative: Vec<u64>,
    pub seconds_total: f64,
    pub cost_usd_total: f64,
}

/// Everything this module counts, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub agent_runs: Vec<AgentRunStats>,
    pub chat_messages: u64,
    pub chat_triggers: u64,
    /// Whether the pipeline's sandbox gate is open now, and how often it opened.
    pub sandbox_gate_open: bool,
    pub sandbox_gate_trips: u64,
}

/// Reads every counter.
pub fn snapshot() -> MetricsSnapshot {
    let agent_runs = AgentKind::ALL
        .iter()
        .map(|kind| {
            let runs = &RUNS[kind.index()];
            let mut total = 0;
            let cumulative = runs
                .buckets
                .iter()
                .map(|b| {
                    total += b.load(Relaxed);
                    total
                })
                .collect();
            AgentRunStats {
                kind: *kind,
                ok: runs.ok.load(Relaxed),
                failed: runs.failed.load(Relaxed),
                cumulative,
                seconds_total: runs.micros.load(Relaxed) as f64 / 1e6,
                cost_usd_total: runs.cost_micro_usd.load(Relaxed) as f64 / 1e6,
            }
        })
        .collect();
    MetricsSnapshot {
        agent_runs,
        chat_messages: CHAT_MESSAGES.load(Relaxed),
        chat_triggers: CHAT_TRIGGERS.load(Relaxed),
        sandbox_gate_open: GATE_OPEN.load(Relaxed) == 1,
        sandbox_gate_trips: GATE_TRIPS.load(Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(error: bool, cost: Option<f64>) -> AgentOutcome {
        AgentOutcome {
            session_id: None,
            text: String::new(),
            cost_usd: cost,
            num_turns: None,
            error: error.then_some(crate::agent::AgentError::MaxTurns),
        }
    }

    #[test]
    fn runs_land_in_their_bucket_and_add_up() {
        // Statics are shared with other tests in this binary: compare differences.
        let before = snapshot().agent_runs[0].clone();
        agent_run(
            AgentKind::Task,
            Duration::from_secs(3),
            &outcome(false, Some(0.25)),
        );
        agent_run(
            AgentKind::Task,
            Duration::from_secs(7200),
            &outcome(true, None),
        );
        let after = snapshot().agent_runs[0].clone();
        assert_eq!(after.kind, AgentKind::Task);
        assert_eq!(after.ok - before.ok, 1);
        assert_eq!(after.failed - before.failed, 1);
        // 3 s is in the `le=5` bucket (index 1), 7200 s only in `+Inf`.
        assert_eq!(after.cumulative[0] - before.cumulative[0], 0);
        assert_eq!(after.cumulative[1] - before.cumulative[1], 1);
        let last = DURATION_BUCKETS_S.len();
        assert_eq!(after.cumulative[last] - before.cumulative[last], 2);
        assert!((after.cost_usd_total - before.cost_usd_total - 0.25).abs() < 1e-9);
        assert!((after.seconds_total - before.seconds_total - 7203.0).abs() < 1e-6);
    }
}
