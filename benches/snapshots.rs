//! Durable snapshot throughput: borg's redb store against SQLite, the original borg's store.
//!
//! Run with `cargo bench --bench snapshots` (release). `BENCH_QUICK=1` shortens every phase.
//!
//! For each target batch size B in 1, 10, 100, 1000, B concurrent submitters each own a key and
//! save ~1 KiB values in a closed loop (the next save once the previous one is acknowledged as
//! durable). The group commit then forms batches of about B: while one commit is in flight,
//! every other submitter queues. Both backends see the same workload through the same shape of
//! writer (one thread, take everything queued up to 4096, one transaction, fsync, then ack):
//!
//! - **redb**: `borg::store::Store`, `Durability::Immediate`, incarnation fence checked per save;
//! - **SQLite** (bundled, WAL, `synchronous=FULL`): one transaction per batch, an upsert into
//!   `snapshots(key TEXT PRIMARY KEY, value BLOB)` per save.
//!
//! Each size runs in interleaved rounds (redb SQLite, SQLite redb, redb SQLite; one round in
//! quick mode) and every figure is the median over the rounds: the disk's fsync latency drifts,
//! and interleaving spreads a slow spell over both backends. Reported: average batch formed, commits/s, durable snapshots/s, commit latency
//! p50/p99 (writer side: apply + commit + fsync) and ack latency p50/p99 (submitter side: from
//! the call to the durable acknowledgement). A last run with 4096 submitters saturates both.
//!
//! The files live on the real disk: /tmp unless it is a tmpfs, then `target/bench-tmp`.
//! fsync cost depends entirely on the disk, so compare ratios, not absolute figures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borg::store::{MAX_BATCH, Store};
use supervisors::snapshot::SnapshotStore;
use tokio::sync::{mpsc, oneshot};

const BATCHES: [usize; 4] = [1, 10, 100, 1000];
const SATURATION: usize = 4096;
const VALUE_LEN: usize = 1024;

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A backend under test: something that makes a save durable and counts its commits.
trait Backend: Clone + Send + Sync + 'static {
    fn save(&self, key: &str, value: Vec<u8>) -> impl Future<Output = ()> + Send;
    /// (commits, snapshots written) so far.
    fn counters(&self) -> (u64, u64);
    /// Commit latency p50/p99 in microseconds, over commits since `since`.
    fn commit_percentiles(&self, since: Instant) -> (u64, u64);
}

// ---- redb through borg's store -------------------------------------------------------------

#[derive(Clone)]
struct Redb(Store);

impl Backend for Redb {
    async fn save(&self, key: &str, value: Vec<u8>) {
        self.0.save(key, 1, value).await.expect("redb save");
    }
    fn counters(&self) -> (u64, u64) {
        let s = self.0.stats();
        (s.commits, s.snapshots_written)
    }
    fn commit_percentiles(&self, _since: Instant) -> (u64, u64) {
        // The store's own figure, over its last LATENCY_WINDOW commits (what the dashboard shows).
        let s = self.0.stats();
        (s.commit_p50_micros, s.commit_p99_micros)
    }
}

// ---- SQLite with the same group-commit writer ----------------------------------------------

type SqliteRequest = (String, Vec<u8>, oneshot::Sender<()>);

#[derive(Clone)]
struct Sqlite {
    tx: mpsc::Sender<SqliteRequest>,
    commits: Arc<AtomicU64>,
    snapshots: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<(Instant, u64)>>>,
}

impl Sqlite {
    fn open(path: &Path) -> Sqlite {
        let conn = rusqlite::Connection::open(path).expect("sqlite open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("WAL");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS snapshots (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
        )
        .unwrap();
        let (tx, rx) = mpsc::channel(2 * MAX_BATCH);
        let me = Sqlite {
            tx,
            commits: Arc::default(),
            snapshots: Arc::default(),
            latencies: Arc::default(),
        };
        let counters = me.clone();
        std::thread::spawn(move || counters.writer(conn, rx));
        me
    }

    fn writer(self, mut conn: rusqlite::Connection, mut rx: mpsc::Receiver<SqliteRequest>) {
        // Only the writer's clone holds a sender; the loop must end when the bench's clones go.
        drop(self.tx);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            let started = Instant::now();
            let tx = conn.transaction().unwrap();
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO snapshots (key, value) VALUES (?1, ?2) \
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )
                    .unwrap();
                for (key, value, _) in &batch {
                    upsert.execute(rusqlite::params![key, value]).unwrap();
                }
            }
            tx.commit().unwrap();
            let took = started.elapsed().as_micros() as u64;
            self.latencies.lock().unwrap().push((started, took));
            self.commits.fetch_add(1, Relaxed);
            self.snapshots.fetch_add(batch.len() as u64, Relaxed);
            for (_, _, reply) in batch.drain(..) {
                _ = reply.send(());
            }
        }
    }
}

impl Backend for Sqlite {
    async fn save(&self, key: &str, value: Vec<u8>) {
        let (reply, ack) = oneshot::channel();
        self.tx.send((key.to_owned(), value, reply)).await.unwrap();
        ack.await.expect("sqlite writer died");
    }
    fn counters(&self) -> (u64, u64) {
        (self.commits.load(Relaxed), self.snapshots.load(Relaxed))
    }
    fn commit_percentiles(&self, since: Instant) -> (u64, u64) {
        let mut took: Vec<u64> = self
            .latencies
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, t)| *t)
            .collect();
        took.sort_unstable();
        (pct(&took, 50), pct(&took, 99))
    }
}

// ---- the workload --------------------------------------------------------------------------

struct Row {
    backend: &'static str,
    submitters: usize,
    avg_batch: f64,
    commits_per_s: f64,
    snapshots_per_s: f64,
    commit_p50: u64,
    commit_p99: u64,
    ack_p50: u64,
    ack_p99: u64,
}

fn pct(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        0
    } else {
        sorted[(sorted.len() - 1) * p / 100]
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Runs `submitters` closed-loop savers against `backend`: a warm-up, then the measured phase.
async fn workload<B: Backend>(
    name: &'static str,
    backend: B,
    submitters: usize,
    warmup: Duration,
    measure: Duration,
) -> Row {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tasks: Vec<_> = (0..submitters)
        .map(|i| {
            let (backend, phase) = (backend.clone(), phase.clone());
            tokio::spawn(async move {
                let key = format!("bench/{i:05}");
                let mut acks = Vec::new();
                let mut n = i as u64;
                loop {
                    let at_start = phase.load(Relaxed);
                    if at_start == STOP {
                        return acks;
                    }
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let value = n.to_le_bytes().repeat(VALUE_LEN / 8);
                    let started = Instant::now();
                    backend.save(&key, value).await;
                    // Only saves entirely inside the measured phase count.
                    if at_start == MEASURE && phase.load(Relaxed) == MEASURE {
                        acks.push(started.elapsed().as_micros() as u64);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let (c0, s0) = backend.counters();
    let t0 = Instant::now();
    phase.store(MEASURE, Relaxed);
    tokio::time::sleep(measure).await;
    phase.store(STOP, Relaxed);
    let (c1, s1) = backend.counters();
    let secs = t0.elapsed().as_secs_f64();
    let (commit_p50, commit_p99) = backend.commit_percentiles(t0);
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.unwrap());
    }
    acks.sort_unstable();
    let (commits, snapshots) = ((c1 - c0) as f64, (s1 - s0) as f64);
    Row {
        backend: name,
        submitters,
        avg_batch: snapshots / commits.max(1.0),
        commits_per_s: commits / secs,
        snapshots_per_s: snapshots / secs,
        commit_p50,
        commit_p99,
        ack_p50: pct(&acks, 50),
        ack_p99: pct(&acks, 99),
    }
}

/// Opens borg's store in `dir` and claims every submitter's key (incarnation 1).
async fn open_redb(dir: &Path, submitters: usize) -> Store {
    let store = Store::open(dir).expect("open the store");
    // Concurrently, so that 4096 claims take a few commits, not 4096.
    let claims: Vec<_> = (0..submitters)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.claim(&format!("bench/{i:05}")).await.unwrap() })
        })
        .collect();
    for claim in claims {
        assert_eq!(claim.await.unwrap().incarnation, 1);
    }
    store
}

/// The median of each figure over the rounds of one backend and size.
fn median(rounds: &[Row]) -> Row {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }
    let f = |get: fn(&Row) -> f64| mid(rounds.iter().map(get).collect());
    let u = |get: fn(&Row) -> u64| mid(rounds.iter().map(get).collect());
    Row {
        backend: rounds[0].backend,
        submitters: rounds[0].submitters,
        avg_batch: f(|r| r.avg_batch),
        commits_per_s: f(|r| r.commits_per_s),
        snapshots_per_s: f(|r| r.snapshots_per_s),
        commit_p50: u(|r| r.commit_p50),
        commit_p99: u(|r| r.commit_p99),
        ack_p50: u(|r| r.ack_p50),
        ack_p99: u(|r| r.ack_p99),
    }
}

/// Both backends at one size: `rounds` interleaved rounds (redb SQLite, SQLite redb, ...),
/// so that a slow spell of the disk does not land on one backend only. Medians are reported.
async fn compare(
    dir: &Path,
    submitters: usize,
    rounds: usize,
    phase: (Duration, Duration),
) -> [Row; 2] {
    let (warmup, measure) = phase;
    let store = open_redb(&dir.join("redb"), submitters).await;
    std::fs::create_dir_all(dir.join("sqlite")).unwrap();
    let sqlite = Sqlite::open(&dir.join("sqlite").join("borg.sqlite"));
    let (mut r, mut s) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let redb = Redb(store.clone());
        if round % 2 == 0 {
            r.push(workload("redb", redb, submitters, warmup, measure).await);
            s.push(workload("sqlite", sqlite.clone(), submitters, warmup, measure).await);
        } else {
            s.push(workload("sqlite", sqlite.clone(), submitters, warmup, measure).await);
            r.push(workload("redb", redb, submitters, warmup, measure).await);
        }
    }
    store.close().await;
    [median(&r), median(&s)]
}

// ---- where the files go --------------------------------------------------------------------

/// The filesystem type of the mount holding `path`, from /proc/mounts (Linux).
fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_dev, at, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(at).then(|| (at.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

fn bench_base() -> PathBuf {
    let tmp = std::env::temp_dir();
    match fs_type(&tmp).as_deref() {
        Some("tmpfs" | "ramfs") | None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
            let base = target.join("bench-tmp");
            std::fs::create_dir_all(&base).unwrap();
            base
        }
        Some(_) => tmp,
    }
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

fn main() {
    let started = Instant::now();
    // (warm-up, measured) per round, and rounds per backend and size.
    let (phase, saturation, rounds) = if quick() {
        let p = (Duration::from_millis(100), Duration::from_millis(400));
        (p, p, 1)
    } else {
        let p = (Duration::from_millis(250), Duration::from_millis(800));
        (
            p,
            (Duration::from_millis(400), Duration::from_millis(1200)),
            3,
        )
    };
    let base = bench_base();
    let scratch = tempfile::Builder::new()
        .prefix("borg-bench-snapshots-")
        .tempdir_in(&base)
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "snapshot bench: {} mode ({rounds} interleaved rounds, medians), {} B values, files in {} ({}), {} cpus",
        if quick() { "QUICK" } else { "full" },
        VALUE_LEN,
        scratch.path().display(),
        fs_type(scratch.path()).unwrap_or_else(|| "unknown fs".into()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut rows = Vec::new();
    runtime.block_on(async {
        for (i, &b) in BATCHES.iter().chain([&SATURATION]).enumerate() {
            let p = if b == SATURATION { saturation } else { phase };
            let dir = scratch.path().join(format!("run{i}"));
            rows.extend(compare(&dir, b, rounds, p).await);
            _ = std::fs::remove_dir_all(&dir);
        }
    });
    println!();
    println!(
        "{:<7} {:>10} {:>9} {:>10} {:>12} {:>11} {:>11} {:>10} {:>10}",
        "backend",
        "submitters",
        "avg batch",
        "commits/s",
        "snapshots/s",
        "commit p50",
        "commit p99",
        "ack p50",
        "ack p99"
    );
    for r in &rows {
        println!(
            "{:<7} {:>10} {:>9.1} {:>10.1} {:>12.0} {:>11} {:>11} {:>10} {:>10}",
            r.backend,
            r.submitters,
            r.avg_batch,
            r.commits_per_s,
            r.snapshots_per_s,
            ms(r.commit_p50),
            ms(r.commit_p99),
            ms(r.ack_p50),
            ms(r.ack_p99)
        );
    }
    println!();
    println!(
        "{:>10} {:>14} {:>14} {:>12} {:>18}",
        "submitters", "redb snap/s", "sqlite snap/s", "redb/sqlite", "commit p99 r/s"
    );
    let mut json_rows = Vec::new();
    for pair in rows.chunks(2) {
        let (redb, sqlite) = (&pair[0], &pair[1]);
        let ratio = redb.snapshots_per_s / sqlite.snapshots_per_s.max(f64::MIN_POSITIVE);
        println!(
            "{:>10} {:>14.0} {:>14.0} {:>11.2}x {:>8} / {:<8}",
            redb.submitters,
            redb.snapshots_per_s,
            sqlite.snapshots_per_s,
            ratio,
            ms(redb.commit_p99),
            ms(sqlite.commit_p99),
        );
        for r in pair {
            json_rows.push(serde_json::json!({
                "backend": r.backend, "submitters": r.submitters, "avg_batch": r.avg_batch,
                "commits_per_s": r.commits_per_s, "snapshots_per_s": r.snapshots_per_s,
                "commit_p50_us": r.commit_p50, "commit_p99_us": r.commit_p99,
                "ack_p50_us": r.ack_p50, "ack_p99_us": r.ack_p99,
            }));
        }
    }
    let saturated = &rows[rows.len() - 2..];
    println!();
    println!(
        "saturation ({SATURATION} submitters): redb {:.0} durable snapshots/s, sqlite {:.0}/s",
        saturated[0].snapshots_per_s, saturated[1].snapshots_per_s
    );
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "RESULT {}",
        serde_json::json!({ "bench": "snapshots", "rows": json_rows })
    );
}
