//! Chat benchmarks, with the real router, group actors and redb store, and an agent runner
//! that only records when it was asked to start:
//!
//! 1. latency from an incoming message to the agent process being started, minus the
//!    collection window, with 100 active groups (target p99 < 20 ms);
//! 2. memory per idle group actor at 1,000 groups.
//!
//! `cargo bench --bench chat`; `BENCH_QUICK=1` shrinks it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::agent::{AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use actors::chat::group::{ChatSettings, GroupDeps};
use actors::chat::router::{Router, RouterArgs, RouterMsg, RouterSettings};
use actors::chat::{
    ChatId, ChatTransport, Format, IncomingMessage, Platform, Taken, TransportError,
    TransportFuture,
};
use actors::slots::AgentSlots;
use borg::store::Store;
use ractor::{Actor, ActorRef};
use supervisors::snapshot::SnapshotStore;
use supervisors::{Introspection, SupervisorRef, SupervisorSpec};

/// Records when each run was asked for, keyed by chat.
#[derive(Default)]
struct StampingAgent {
    started: Mutex<HashMap<String, Instant>>,
}

impl AgentRunner for StampingAgent {
    fn run(
        &self,
        request: AgentRequest,
        _progress: ProgressSink,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AgentOutcome> + Send + '_>> {
        let chat = request.prompt.lines().next().unwrap_or_default().to_owned();
        self.started.lock().unwrap().insert(chat, Instant::now());
        Box::pin(async {
            AgentOutcome {
                session_id: Some("s".into()),
                text: "ok".into(),
                cost_usd: None,
                num_turns: Some(1),
                error: None,
            }
        })
    }
}

/// A platform that accepts everything instantly.
struct NullChat;

impl ChatTransport for NullChat {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }
    fn send<'a>(
        &'a self,
        _: &'a ChatId,
        _: &'a str,
        _: Format,
        _: Option<&'a str>,
    ) -> TransportFuture<'a, String> {
        Box::pin(async { Ok::<_, TransportError>("1".into()) })
    }
    fn edit<'a>(&'a self, _: &'a ChatId, _: &'a str, _: &'a str) -> TransportFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn typing<'a>(&'a self, _: &'a ChatId) -> TransportFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

fn msg(chat: usize, id: u64, text: &str) -> IncomingMessage {
    IncomingMessage {
        chat: ChatId(format!("tg:{chat}")),
        chat_title: format!("g{chat}"),
        private: false,
        message_id: id.to_string(),
        sender_id: "tg:42".into(),
        sender_name: "Ann".into(),
        text: text.into(),
        mentions_bot: false,
        reply_to_bot: false,
        at_ms: 0,
    }
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Bench {
    router: ActorRef<RouterMsg>,
    agent: Arc<StampingAgent>,
    _dir: tempfile::TempDir,
}

async fn setup(window: Duration) -> Bench {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let store: Arc<dyn SnapshotStore> = Arc::new(store);
    let introspection = Introspection::new();
    let (groups, _) =
        SupervisorRef::spawn_root("groups", SupervisorSpec::default(), introspection.clone())
            .await
            .unwrap();
    let (slots, _) = Actor::spawn(None, AgentSlots, 64).await.unwrap();
    let agent = Arc::new(StampingAgent::default());
    let chat: Arc<dyn ChatTransport> = Arc::new(NullChat);
    let deps = GroupDeps {
        settings: Arc::new(ChatSettings {
            assistant_name: "Borg".into(),
            model: "m".into(),
            collection_window: window,
            cooldown: Duration::from_millis(10),
            rate_limit_per_minute: 1000,
            rate_window: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            hard_timeout: Duration::from_secs(60),
            sessions_dir: dir.path().join("sessions"),
            system_prompt: None,
        }),
        transport: chat.clone(),
        runner: agent.clone(),
        slots,
        store: store.clone(),
    };
    let args = RouterArgs {
        settings: RouterSettings {
            version: "bench".into(),
            started: Instant::now(),
            admin_chat: None,
            admin_users: vec!["tg:42".into()],
            pipeline_summary: String::new(),
            sandbox: "none".into(),
        },
        transports: HashMap::from([(Platform::Telegram, chat)]),
        group_deps: deps,
        groups,
        store,
        introspection,
    };
    let (router, _) = Actor::spawn(None, Router, args).await.unwrap();
    Bench {
        router,
        agent,
        _dir: dir,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let (groups, rounds) = if quick { (20, 2) } else { (100, 5) };
    let window = Duration::from_millis(50);
    let bench = setup(window).await;
    for g in 0..groups {
        bench
            .router
            .cast(RouterMsg::Incoming(
                msg(g, 1, "/register"),
                Taken::unwatched(),
            ))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // All groups triggered at once, `rounds` times: the worst case for the p99.
    let mut latencies = Vec::new();
    for round in 0..rounds {
        bench.agent.started.lock().unwrap().clear();
        let mut sent = HashMap::new();
        for g in 0..groups {
            let id = 100 + round as u64;
            sent.insert(format!("g{g}"), Instant::now());
            bench
                .router
                .cast(RouterMsg::Incoming(
                    msg(g, id, "@Borg hi"),
                    Taken::unwatched(),
                ))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while bench.agent.started.lock().unwrap().len() < groups && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = bench.agent.started.lock().unwrap().clone();
        for (chat, at) in started {
            let title = chat.split('"').nth(1).unwrap_or_default().to_owned();
            if let Some(t0) = sent.get(&title) {
                let ms = at.duration_since(*t0).saturating_sub(window).as_secs_f64() * 1e3;
                latencies.push(ms);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "update → agent start, minus the {} ms window, {groups} groups, {} runs: p50 {p50:.2} ms, p99 {p99:.2} ms (target p99 < 20 ms)",
        window.as_millis(),
        latencies.len()
    );

    // Memory: 1,000 idle registered groups on top of the running ones.
    let extra = if quick { 200 } else { 1000 };
    let before = rss_kb();
    for g in 10_000..10_000 + extra {
        bench
            .router
            .cast(RouterMsg::Incoming(
                msg(g, 1, "/register"),
                Taken::unwatched(),
            ))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(if quick { 1 } else { 3 })).await;
    let per_group = (rss_kb().saturating_sub(before)) as f64 / extra as f64;
    println!(
        "memory per idle group actor ({extra} groups): {per_group:.1} KB (incl. its registration and snapshot)"
    );
    println!("RESULT {{\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"kb_per_group\":{per_group:.1}}}");
}
