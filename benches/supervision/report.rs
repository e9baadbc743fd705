//! Measuring and reporting: iteration counts, percentiles, memory, the summary table and the
//! load average that tells how much to trust the tails.

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers.

pub(crate) fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `full` normally, about a tenth of it with `BENCH_QUICK=1`.
pub(crate) fn scaled(full: usize) -> usize {
    if quick() { (full / 10).max(1) } else { full }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Latency samples in nanoseconds.
#[derive(Default)]
pub(crate) struct Samples(pub(crate) Vec<u64>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }

    pub(crate) fn sorted(&mut self) -> &[u64] {
        self.0.sort_unstable();
        &self.0
    }

    /// Nearest-rank percentile `q` (0..=1), in µs.
    pub(crate) fn pct(&mut self, q: f64) -> f64 {
        let s = self.sorted();
        if s.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[rank - 1] as f64 / 1_000.0
    }

    pub(crate) fn summary(&mut self) -> String {
        format!(
            "n={} p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} max={:.1} µs",
            self.0.len(),
            self.pct(0.5),
            self.pct(0.9),
            self.pct(0.99),
            self.pct(0.999),
            self.pct(1.0)
        )
    }
}

pub(crate) async fn ping(actor: &ActorRef<Msg>) {
    match actor.call(Msg::Ping, None).await {
        Ok(CallResult::Success(())) => {}
        _ => panic!("ping failed"),
    }
}

pub(crate) fn restart_intensity() -> Intensity {
    Intensity {
        max_restarts: 1_000_000,
        period: Duration::from_secs(1),
    }
}

/// A worker spec for the restart benchmarks: permanent, no backoff, announcing itself.
pub(crate) fn announcing_spec(id: &str, idx: usize, tx: &Announce) -> ChildSpec {
    let tx = tx.clone();
    ChildSpec::actor(id, move || (Counter::announcing(idx, &tx), ())).backoff(Backoff::none())
}

pub(crate) fn silence_panics() -> Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>
{
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    prev
}

// ---------------------------------------------------------------------------------------------
// 4. Memory per idle actor (run in a subprocess per measurement).

pub(crate) const MEM_CHILD_ENV: &str = "SUPERVISION_BENCH_MEM_CHILD";

pub(crate) fn rss_bytes() -> u64 {
    // VmRSS is statm's resident pages, already multiplied by the page size.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// In the subprocess: start `n` idle actors of `kind` and print the RSS delta per actor.
pub(crate) fn mem_child(kind: &str, n: usize) {
    let rt = runtime();
    let per_actor = rt.block_on(async {
        match kind {
            "supervised" => {
                let (root, _join) = SupervisorRef::spawn_root(
                    "mem",
                    SupervisorSpec::default(),
                    Introspection::new(),
                )
                .await
                .unwrap();
                // Warm up the code paths and the supervisor's tables a little.
                for i in 0..100 {
                    let spec = ChildSpec::actor(format!("warm-{i}"), || (Counter::plain(), ()))
                        .restart(Restart::Temporary);
                    root.start_child(spec).await.unwrap();
                }
                for i in 0..100 {
                    root.terminate_child(&format!("warm-{i}")).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let before = rss_bytes();
                for i in 0..n {
                    let spec = ChildSpec::actor(format!("idle-{i}"), || (Counter::plain(), ()))
                        .restart(Restart::Temporary);
                    root.start_child(spec).await.unwrap();
                }
                assert_eq!(root.count_children().await.unwrap().active, n);
                tokio::time::sleep(Duration::from_millis(100)).await;
                let after = rss_bytes();
                std::mem::forget(root);
                after.saturating_sub(before) as f64 / n as f64
            }
            "bare" => {
                let mut warm = Vec::new();
                for _ in 0..100 {
                    warm.push(Actor::spawn(None, Counter::plain(), ()).await.unwrap());
                }
                for (a, j) in warm {
                    a.stop(None);
                    j.await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let before = rss_bytes();
                let mut actors = Vec::with_capacity(n);
                for _ in 0..n {
                    actors.push(Actor::spawn(None, Counter::plain(), ()).await.unwrap());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let after = rss_bytes();
                std::mem::forget(actors);
                after.saturating_sub(before) as f64 / n as f64
            }
            other => panic!("unknown memory variant {other}"),
        }
    });
    println!("{per_actor}");
    // Skip the teardown of thousands of actors: the number is out.
    std::process::exit(0);
}

pub(crate) fn mem_measure(kind: &str, n: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env(MEM_CHILD_ENV, format!("{kind}:{n}"))
        .output()
        .expect("memory subprocess");
    assert!(
        out.status.success(),
        "memory subprocess failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("bytes per actor")
}

// ---------------------------------------------------------------------------------------------
// Reporting.

pub(crate) struct Row {
    pub(crate) metric: String,
    pub(crate) unit: &'static str,
    pub(crate) supervised: f64,
    pub(crate) bare: f64,
    /// Target description, and whether the supervised figure meets it.
    pub(crate) target: String,
    pub(crate) ok: Option<bool>,
}

impl Row {
    pub(crate) fn ratio(&self) -> f64 {
        self.supervised / self.bare
    }
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100_000.0 {
        format!("{:.3} M", v / 1e6)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(crate) fn print_table(rows: &[Row]) {
    let label = |r: &Row| format!("{} ({})", r.metric, r.unit);
    let w = rows
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(6);
    println!();
    println!(
        "{:<w$}  {:>12}  {:>12}  {:>7}  {:<22}  ok",
        "metric", "supervised", "bare", "ratio", "target"
    );
    println!("{}", "-".repeat(w + 66));
    for r in rows {
        let ok = match r.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<w$}  {:>12}  {:>12}  {:>6.2}x  {:<22}  {}",
            label(r),
            fmt_num(r.supervised),
            fmt_num(r.bare),
            r.ratio(),
            r.target,
            ok,
            w = w
        );
    }
}

/// The 1-minute load average: other work on the machine skews every figure.
pub(crate) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}
