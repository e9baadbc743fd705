//! `/metrics` in Prometheus' text exposition format (version 0.0.4), written by hand: actors
//! by kind and status, restarts, mailbox depths and breaker states from the introspection
//! registry; tasks by phase from the desk; agent runs, their durations and cost and chat
//! triggers from [`actors::metrics`]; the agent slots; store commits and their latency from
//! the store's own counters; the event-stream clients of this server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actors::metrics::{DURATION_BUCKETS_S, snapshot};
use actors::pipeline::phase::Status;
use supervisors::{ActorInfo, BreakerState};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::WebContext;
use super::error::text_response;
use super::sse;

/// How long a scrape waits for the task list before leaving it out.
const TASKS_WAIT_MS: u64 = 2_000;

pub fn routes(ctx: WebContext) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .then(move || {
            let ctx = ctx.clone();
            async move {
                let text = render(&ctx).await;
                let text = ctx.secrets.scrub(&text).into_owned();
                text_response(
                    StatusCode::OK,
                    text,
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            }
        })
        .boxed()
}

/// Writes one metric family.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn status_name(status: supervisors::Status) -> &'static str {
    match status {
        supervisors::Status::Running => "running",
        supervisors::Status::Restarting => "restarting",
        supervisors::Status::Parked => "parked",
        supervisors::Status::Stopped => "stopped",
    }
}

fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
        BreakerState::ForcedOpen => "forced_open",
    }
}

/// The whole exposition.
pub async fn render(ctx: &WebContext) -> String {
    let mut out = Out(String::with_capacity(16 * 1024));
    out.family("borg_up", "gauge", "1 while borg answers.");
    out.sample("borg_up", &[], 1);
    out.family(
        "borg_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    out.sample("borg_uptime_seconds", &[], ctx.started.elapsed().as_secs());
    actor_metrics(&mut out, &ctx.introspection.list());
    task_metrics(&mut out).await;
    agent_metrics(&mut out).await;
    store_metrics(&mut out, ctx);
    out.family(
        "borg_web_event_stream_clients",
        "gauge",
        "Event-stream (SSE) clients connected.",
    );
    out.sample("borg_web_event_stream_clients", &[], sse::clients());
    out.family(
        "borg_web_event_stream_dropped_total",
        "counter",
        "Event-stream clients dropped for falling behind.",
    );
    out.sample("borg_web_event_stream_dropped_total", &[], sse::dropped());
    out.0
}

fn actor_metrics(out: &mut Out, actors: &[ActorInfo]) {
    let mut by_kind: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut breakers: BTreeMap<&str, u64> = BTreeMap::new();
    for a in actors {
        *by_kind.entry((&a.kind, status_name(a.status))).or_default() += 1;
        if let Some(state) = a.breaker {
            *breakers.entry(breaker_name(state)).or_default() += 1;
        }
    }
    out.family(
        "borg_actors",
        "gauge",
        "Supervised actors by kind and status.",
    );
    for ((kind, status), n) in &by_kind {
        out.sample("borg_actors", &[("kind", kind), ("status", status)], n);
    }
    out.family(
        "borg_actor_restarts_total",
        "counter",
        "Restarts of each actor since it was first started.",
    );
    for a in actors {
        let labels = [("path", a.path.as_str()), ("kind", a.kind.as_str())];
        out.sample("borg_actor_restarts_total", &labels, a.restarts);
    }
    out.family(
        "borg_actor_mailbox_depth",
        "gauge",
        "Messages sent to each actor through its handle and not yet handled.",
    );
    for a in actors {
        let labels = [("path", a.path.as_str()), ("kind", a.kind.as_str())];
        out.sample("borg_actor_mailbox_depth", &labels, a.mailbox_depth);
    }
    out.family(
        "borg_breakers",
        "gauge",
        "Circuit breakers by state (closed, open, half_open, forced_open).",
    );
    for (state, n) in &breakers {
        out.sample("borg_breakers", &[("state", state)], n);
    }
    out.family(
        "borg_breaker_state",
        "gauge",
        "1 for each actor's current breaker state.",
    );
    for a in actors {
        if let Some(state) = a.breaker {
            let labels = [("path", a.path.as_str()), ("state", breaker_name(state))];
            out.sample("borg_breaker_state", &labels, 1);
        }
    }
}

async fn task_metrics(out: &mut Out) {
    let Some(desk) = actors::pipeline::desk::desk() else {
        return;
    };
    let Ok(tasks) = ractor::call_t!(desk, actors::pipeline::desk::DeskMsg::List, TASKS_WAIT_MS)
    else {
        return;
    };
    out.family("borg_tasks", "gauge", "Pipeline tasks by phase.");
    for status in Status::ALL {
        let n = tasks.iter().filter(|t| t.status == status).count();
        out.sample("borg_tasks", &[("phase", status.name())], n);
    }
}

async fn agent_metrics(out: &mut Out) {
    let m = snapshot();
    out.family(
        "borg_agent_runs_total",
        "counter",
        "Finished agent runs by kind (task, chat) and outcome (ok, error).",
    );
    for r in &m.agent_runs {
        out.sample(
            "borg_agent_runs_total",
            &[("kind", r.kind.name()), ("outcome", "ok")],
            r.ok,
        );
        out.sample(
            "borg_agent_runs_total",
            &[("kind", r.kind.name()), ("outcome", "error")],
            r.failed,
        );
    }
    out.family(
        "borg_agent_run_duration_seconds",
        "histogram",
        "How long agent runs took.",
    );
    for r in &m.agent_runs {
        let kind = r.kind.name();
        for (le, n) in DURATION_BUCKETS_S.iter().zip(&r.cumulative) {
            let le = le.to_string();
            out.sample(
                "borg_agent_run_duration_seconds_bucket",
                &[("kind", kind), ("le", &le)],
                n,
            );
        }
        let count = r.cumulative.last().copied().unwrap_or(0);
        let labels = [("kind", kind), ("le", "+Inf")];
        out.sample("borg_agent_run_duration_seconds_bucket", &labels, count);
        out.sample(
            "borg_agent_run_duration_seconds_sum",
            &[("kind", kind)],
            r.seconds_total,
        );
        out.sample(
            "borg_agent_run_duration_seconds_count",
            &[("kind", kind)],
            count,
        );
    }
    out.family(
        "borg_agent_cost_usd_total",
        "counter",
        "Agent cost in US dollars, as the claude CLI reported it.",
    );
    for r in &m.agent_runs {
        let labels = [("kind", r.kind.name())];
        out.sample("borg_agent_cost_usd_total", &labels, r.cost_usd_total);
    }
    out.family(
        "borg_chat_messages_total",
        "counter",
        "Chat messages taken in by registered groups.",
    );
    out.sample("borg_chat_messages_total", &[], m.chat_messages);
    out.family(
        "borg_chat_triggers_total",
        "counter",
        "Chat messages that triggered the assistant.",
    );
    out.sample("borg_chat_triggers_total", &[], m.chat_triggers);
    out.family(
        "borg_pipeline_paused",
        "gauge",
        "1 while the pipeline waits for its agent sandbox (the Docker engine) to come back.",
    );
    out.sample("borg_pipeline_paused", &[], u64::from(m.sandbox_gate_open));
    out.family(
        "borg_pipeline_pauses_total",
        "counter",
        "Times the pipeline paused because its agent sandbox was unavailable.",
    );
    out.sample("borg_pipeline_pauses_total", &[], m.sandbox_gate_trips);
    if let Some(slots) = super::api::slots().await {
        out.family(
            "borg_agent_slots",
            "gauge",
            "MAX_CONCURRENT_AGENTS and its use.",
        );
        out.sample("borg_agent_slots", &[("state", "limit")], slots.limit);
        let running = slots.running.len();
        out.sample("borg_agent_slots", &[("state", "running")], running);
        out.sample("borg_agent_slots", &[("state", "waiting")], slots.waiting);
    }
}

fn store_metrics(out: &mut Out, ctx: &WebContext) {
    let s = ctx.store.stats();
    let counters = [
        ("borg_store_commits_total", "Durable commits.", s.commits),
        (
            "borg_store_failed_commits_total",
            "Commits that failed.",
            s.failed_commits,
        ),
        (
            "borg_store_snapshots_written_total",
            "Snapshots made durable.",
            s.snapshots_written,
        ),
        (
            "borg_store_bytes_written_total",
            "Snapshot bytes made durable.",
            s.bytes_written,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], value);
    }
    let name = "borg_store_commit_seconds";
    out.family(
        name,
        "summary",
        "Commit latency (apply + fsync); quantiles over the last 1024 commits.",
    );
    out.sample(
        name,
        &[("quantile", "0.5")],
        s.commit_p50_micros as f64 / 1e6,
    );
    out.sample(
        name,
        &[("quantile", "0.99")],
        s.commit_p99_micros as f64 / 1e6,
    );
    out.sample(
        "borg_store_commit_seconds_sum",
        &[],
        s.commit_micros_total as f64 / 1e6,
    );
    out.sample("borg_store_commit_seconds_count", &[], s.commits);
}
