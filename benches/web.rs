//! HTTP API benchmarks, with the real server on 127.0.0.1 and a real introspection registry:
//!
//! 1. `GET /api/actors` with 10,000 live actors: p50/p99 latency (request to the last byte of
//!    the body) and response size, against serialising the same list with serde_json
//!    directly in this process (what the handler cannot do less than);
//! 2. a burst of 10,000 lifecycle events while 50 clients follow `/api/events`: how fast the
//!    events are emitted, against the same burst with nobody listening (target ≥ 0.9×), and
//!    what the clients received (a burst that outruns the stream's pump makes every client
//!    `lagged`: the daemon never waits for readers);
//! 3. the same 50 clients with events at a pace they can follow: what each receives.
//!
//! Prints figures and ratios; asserts no wall-clock numbers. `cargo bench --bench web`;
//! `BENCH_QUICK=1` shrinks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use borg::config::Config;
use borg::store::Store;
use borg::web::{WebContext, secrets::Secrets, streams::Streams};
use supervisors::{ActorStats, Introspection};

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn start_server(introspection: Introspection, dir: &std::path::Path) -> (String, WebContext) {
    let ctx = WebContext {
        whatsapp: None,
        config: Arc::new(Config::default()),
        introspection,
        store: Store::open(dir).expect("store opens"),
        started: Instant::now(),
        root: None,
        root_path: "root".into(),
        own_path: "root/web".into(),
        sandbox: "bench".into(),
        // Scrubbing is part of the cost: a chat token and a model key to look for.
        secrets: Secrets::new([
            "4242:bench-telegram-token".into(),
            "sk-ant-bench-key".into(),
        ]),
        streams: Streams::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(borg::web::serve(
        listener,
        ctx.clone(),
        std::future::pending(),
    ));
    (base, ctx)
}

/// 10,000 actors shaped like borg's: tasks under repositories, some with failures.
fn populate(introspection: &Introspection, n: usize) {
    for i in 0..n {
        let path = format!("root/pipeline/repo:app{}/tasks/task:{i}", i % 10);
        let stats = Arc::new(ActorStats::default());
        stats.record_snapshot(1);
        introspection.started(&path, "task", stats);
        if i % 10 == 0 {
            introspection.failed(
                &path,
                "the agent exited with status Some(1)",
                supervisors::Status::Restarting,
            );
            introspection.restarted(&path);
        }
    }
}

async fn actors_list(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let introspection = Introspection::new();
    populate(&introspection, 10_000);
    let (base, _ctx) = start_server(introspection.clone(), dir.path()).await;
    let client = reqwest::Client::new();
    let rounds = if quick { 30 } else { 200 };
    let (mut http, mut direct) = (Vec::new(), Vec::new());
    let (mut http_bytes, mut direct_bytes) = (0, 0);
    // Interleaved, so both see the same machine.
    for _ in 0..rounds {
        let started = Instant::now();
        let body = client
            .get(format!("{base}/api/actors"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        http.push(started.elapsed());
        http_bytes = body.len();

        let started = Instant::now();
        let bytes = serde_json::to_vec(&introspection.list()).unwrap();
        direct.push(started.elapsed());
        direct_bytes = bytes.len();
    }
    http.sort();
    direct.sort();
    println!("GET /api/actors, 10,000 actors, {rounds} requests:");
    for (label, p) in [("p50", 50), ("p99", 99)] {
        let (h, d) = (percentile(&http, p), percentile(&direct, p));
        println!(
            "  {label}: HTTP {:.1} ms, serde_json directly {:.1} ms, ratio {:.2}x",
            micros(h) / 1e3,
            micros(d) / 1e3,
            h.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!(
        "  response {:.2} MB ({} bytes), direct serialisation {} bytes",
        http_bytes as f64 / 1e6,
        http_bytes,
        direct_bytes
    );
}

/// Emits `n` events as an actor's supervisor would, on a thread of its own, `slice` at a
/// time with a millisecond's pause between slices (`n` for one burst); returns how long the
/// emitting took, pauses not counted.
async fn emit(introspection: &Introspection, n: usize, slice: usize) -> Duration {
    let introspection = introspection.clone();
    tokio::task::spawn_blocking(move || {
        let stats = Arc::new(ActorStats::default());
        let mut took = Duration::ZERO;
        for chunk in 0..n.div_ceil(slice) {
            let started = Instant::now();
            for _ in 0..slice.min(n - chunk * slice) {
                introspection.started("root/chat/groups/group:tg:42", "group", stats.clone());
            }
            took += started.elapsed();
            if slice < n {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        took
    })
    .await
    .unwrap()
}

async fn burst(introspection: &Introspection, n: usize) -> Duration {
    emit(introspection, n, n).await
}

/// A client that follows `/api/events` and counts what it receives.
struct Follower {
    events: Arc<AtomicUsize>,
    lagged: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn follow(client: &reqwest::Client, base: &str) -> Follower {
    let mut response = client
        .get(format!("{base}/api/events"))
        .send()
        .await
        .unwrap();
    let (events, lagged) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (e, l) = (events.clone(), lagged.clone());
    let task = tokio::spawn(async move {
        // Frames may be split between chunks: count whole frames only.
        let mut pending = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            pending.extend_from_slice(&chunk);
            let Some(end) = pending.windows(2).rposition(|w| w == b"\n\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&pending[..end + 2]);
            e.fetch_add(text.matches("event: started").count(), Ordering::Relaxed);
            l.fetch_add(text.matches("event: lagged").count(), Ordering::Relaxed);
            pending.drain(..end + 2);
        }
    });
    Follower {
        events,
        lagged,
        task,
    }
}

/// 50 clients while the events come at a pace a page can follow (10 per millisecond, a busy
/// daemon's worst minute compressed): what each client receives.
async fn paced_events(quick: bool) {
    const CLIENTS: usize = 50;
    let events = if quick { 2_000 } else { 10_000 };
    let dir = tempfile::tempdir().unwrap();
    let introspection = Introspection::new();
    let (base, ctx) = start_server(introspection.clone(), dir.path()).await;
    let client = reqwest::Client::new();
    let mut followers = Vec::new();
    for _ in 0..CLIENTS {
        followers.push(follow(&client, &base).await);
    }
    while ctx.streams.events().len() < CLIENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    emit(&introspection, events, 10).await;
    let wall = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut delivered: Vec<usize> = followers
        .iter()
        .map(|f| f.events.load(Ordering::Relaxed))
        .collect();
    let lagged: usize = followers
        .iter()
        .map(|f| f.lagged.load(Ordering::Relaxed))
        .sum();
    delivered.sort();
    println!(
        "{events} events paced at 10/ms ({:.0} events/s over {:.2} s), {CLIENTS} clients:",
        events as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "  delivered per client: min {} / median {} / max {}; clients told `lagged`: {lagged}",
        delivered[0],
        delivered[CLIENTS / 2],
        delivered[CLIENTS - 1]
    );
    for f in followers {
        f.task.abort();
    }
}

async fn event_burst(quick: bool) {
    const EVENTS: usize = 10_000;
    const CLIENTS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let introspection = Introspection::new();
    let (base, ctx) = start_server(introspection.clone(), dir.path()).await;
    let client = reqwest::Client::new();
    let rounds = if quick { 4 } else { 16 };
    // Warm up the registry entry and the code paths.
    burst(&introspection, EVENTS).await;
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    let (mut delivered, mut lagged) = (Vec::new(), 0);
    for round in 0..rounds {
        // Alternately first and second, so neither gets the warmer machine.
        if round % 2 == 0 {
            alone.push(burst(&introspection, EVENTS).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut followers = Vec::new();
        for _ in 0..CLIENTS {
            followers.push(follow(&client, &base).await);
        }
        while ctx.streams.events().len() < CLIENTS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        watched.push(burst(&introspection, EVENTS).await);
        // Let the clients drain what they can, then count.
        tokio::time::sleep(Duration::from_millis(if quick { 300 } else { 1000 })).await;
        for f in &followers {
            delivered.push(f.events.load(Ordering::Relaxed));
            lagged += f.lagged.load(Ordering::Relaxed);
        }
        for f in followers {
            f.task.abort();
        }
        while !ctx.streams.events().is_empty() {
            // Disconnected clients leave at the next event sent to them.
            burst(&introspection, 1).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            alone.push(burst(&introspection, EVENTS).await);
        }
    }
    alone.sort();
    watched.sort();
    delivered.sort();
    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    let (a, w) = (alone[alone.len() / 2], watched[watched.len() / 2]);
    println!("burst of {EVENTS} lifecycle events, {rounds} rounds each, medians (range):");
    println!(
        "  nobody listening: {:.0} events/s ({:.0}-{:.0})",
        rate(a),
        rate(alone[alone.len() - 1]),
        rate(alone[0])
    );
    println!(
        "  {CLIENTS} clients on /api/events: {:.0} events/s ({:.0}-{:.0}), ratio {:.2}x \
         (target >= 0.9x)",
        rate(w),
        rate(watched[watched.len() - 1]),
        rate(watched[0]),
        rate(w) / rate(a)
    );
    println!(
        "  delivered per client: min {} / median {} / max {} of {EVENTS}; clients told `lagged`: {lagged} of {}",
        delivered[0],
        delivered[delivered.len() / 2],
        delivered[delivered.len() - 1],
        delivered.len()
    );
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        actors_list(quick).await;
        event_burst(quick).await;
        paced_events(quick).await;
    });
}
