//! Crash safety of the snapshot store against a real `kill -9`, many times over.
//!
//! The test re-executes its own binary. With `BORG_STORE_CRASH_CHILD=<dir>` set, the test function
//! is the *child*: it opens the store in `<dir>` and has one task per key save snapshots with
//! increasing counters as fast as the store acknowledges them, printing `ACK <key> <counter>`
//! after each acknowledged save. Otherwise it is the *parent*: it starts the child, lets it run
//! for a random 20–300 ms, SIGKILLs it, then reopens the store and checks that
//!
//! - every key holds at least the last counter the child saw acknowledged (an ack means durable),
//! - every stored value passes its self-check (no torn or mixed-up value),
//! - counters and incarnations never go backwards between runs,
//! - no scratch files are left in the data directory.
//!
//! The same data directory is reused, so recovery after a crash runs every iteration, sometimes
//! from a kill in the middle of the previous recovery. `BORG_CRASH_ITERATIONS` sets the number of
//! iterations (default 25) and `BORG_CRASH_SEED` replays a printed seed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use borg::store::{FILE_NAME, Store};
use supervisors::snapshot::SnapshotStore;

const CHILD_ENV: &str = "BORG_STORE_CRASH_CHILD";
/// Must be the name of the test function below: the child is started with `--exact` on it.
const TEST_NAME: &str = "sigkill_at_random_points_never_loses_an_acknowledged_snapshot";
const KEYS: usize = 10;
/// Snapshot sizes to cycle through: from one record per page to values spanning many pages.
const SIZES: [usize; 6] = [16, 300, 1_500, 6_000, 40_000, 150_000];

#[test]
fn sigkill_at_random_points_never_loses_an_acknowledged_snapshot() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let iterations: usize = std::env::var("BORG_CRASH_ITERATIONS")
        .ok()
        .map(|v| v.parse().expect("BORG_CRASH_ITERATIONS must be a number"))
        .unwrap_or(25);
    let seed: u64 = std::env::var("BORG_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("BORG_CRASH_SEED must be a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {iterations} iterations, BORG_CRASH_SEED={seed}");
    let mut rng = XorShift(seed);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut claimed: HashMap<String, u64> = HashMap::new();
    let mut stored_before: HashMap<String, u64> = HashMap::new();
    let mut total_acks = 0usize;

    for iteration in 0..iterations {
        let run_for = Duration::from_millis(20 + rng.next() % 281);
        let mut lines = run_child_and_kill(&dir, run_for);
        // Every other iteration on average, a second child first recovers from the previous
        // kill and is killed in turn, possibly in the middle of that recovery.
        let double = rng.next().is_multiple_of(2);
        if double {
            lines.extend(run_child_and_kill(&dir, run_for / 2));
        }
        let mut acks = 0usize;
        for line in &lines {
            // Anything else on stdout (the test harness's own lines) is ignored. A line cut by
            // the kill can only show a prefix of the counter, which is smaller: still sound.
            let mut words = line.split_whitespace();
            let (Some(tag @ ("ACK" | "CLAIM")), Some(key), Some(n), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                continue;
            };
            let n: u64 = n.parse().unwrap_or_else(|_| panic!("bad line {line:?}"));
            let seen = if tag == "ACK" {
                acks += 1;
                &mut acked
            } else {
                &mut claimed
            };
            let last = seen.entry(key.to_owned()).or_default();
            *last = (*last).max(n);
        }
        total_acks += acks;

        // Recovery: the parent opens what the killed child left behind.
        let stored = runtime.block_on(verify(&dir, &acked, &claimed));
        for (key, n) in &stored {
            let before = stored_before.get(key).copied().unwrap_or(0);
            assert!(*n >= before, "{key} went back from {before} to {n}");
        }
        stored_before = stored;
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [FILE_NAME], "scratch files left behind");
        println!(
            "iteration {iteration:>3}: killed after {:>3} ms{}, {acks:>5} acks, highest counter {}",
            run_for.as_millis(),
            if double { " and again" } else { "" },
            stored_before.values().max().copied().unwrap_or(0)
        );
    }
    assert!(
        total_acks > 0,
        "the child never got a save acknowledged: the test proved nothing"
    );
}

/// Starts the child on `dir`, kills it with SIGKILL after `run_for` and returns its stdout
/// lines. Fails if the child exits on its own (it only stops when killed).
fn run_child_and_kill(dir: &Path, run_for: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    // Read both pipes on their own threads: they end at EOF, which the child's death
    // guarantees, so a child that dies early cannot make the parent hang, and a chatty one
    // cannot block on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + run_for;
    let mut early_exit = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            early_exit = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGKILL on Unix; an error only means it is already gone.
    _ = child.kill();
    child.wait().unwrap();
    let lines = out.join().unwrap();
    let stderr = err.join().unwrap();
    if let Some(status) = early_exit {
        panic!("the child exited by itself ({status}) instead of running until killed:\n{stderr}");
    }
    lines
}

/// Opens the store and checks every key against what the child saw acknowledged. Returns the
/// stored counter per key.
async fn verify(
    dir: &Path,
    acked: &HashMap<String, u64>,
    claimed: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("reopen after kill failed: {e}"));
    let mut stored = HashMap::new();
    for info in store.list().await.expect("list after kill") {
        let last_claim = claimed.get(&info.key).copied().unwrap_or(0);
        assert!(
            info.incarnation >= last_claim,
            "{}: incarnation {} is below the acknowledged claim {last_claim}",
            info.key,
            info.incarnation
        );
        let Some(snapshot) = store.load(&info.key).await.expect("load after kill") else {
            continue;
        };
        assert_eq!(snapshot.bytes.len() as u64, info.size);
        let n = check_payload(&info.key, &snapshot.bytes)
            .unwrap_or_else(|why| panic!("{}: torn or corrupt value: {why}", info.key));
        stored.insert(info.key, n);
    }
    for (key, &n) in acked {
        let have = stored.get(key).copied();
        assert!(
            have.is_some_and(|have| have >= n),
            "{key}: counter {n} was acknowledged, the store holds {have:?}"
        );
    }
    store.close().await;
    stored
}

/// The child: saves forever until killed.
fn child(dir: &Path) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(dir).unwrap_or_else(|e| panic!("child: open failed: {e}"));
        for k in 0..KEYS {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("crash/{k}");
                let claim = store.claim(&key).await.expect("child: claim");
                let mut n = match &claim.last {
                    Some(last) => check_payload(&key, &last.bytes)
                        .unwrap_or_else(|why| panic!("child: {key} holds a bad value: {why}")),
                    None => 0,
                };
                say(&format!("CLAIM {key} {}", claim.incarnation));
                loop {
                    n += 1;
                    store
                        .save(&key, claim.incarnation, payload(&key, n))
                        .await
                        .expect("child: save");
                    say(&format!("ACK {key} {n}"));
                }
            });
        }
        // Never reached while the parent is alive; a safety net if it is not.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    std::process::exit(3)
}

/// Prints a line and flushes it at once, so the parent sees every ack printed before the kill.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The value for `key` at counter `n`: `n`, the length, then bytes derived from both, so that
/// any torn, truncated or swapped value fails [`check_payload`].
fn payload(key: &str, n: u64) -> Vec<u8> {
    let seed = fnv(key.as_bytes()) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = SIZES[(seed % SIZES.len() as u64) as usize];
    let mut out = Vec::with_capacity(len + 12);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let mut rng = XorShift(seed | 1);
    while out.len() < len + 12 {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len + 12);
    out
}

/// The counter in a stored value, if the value is exactly what [`payload`] makes for it.
fn check_payload(key: &str, bytes: &[u8]) -> Result<u64, String> {
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or("shorter than its header")?
            .try_into()
            .unwrap(),
    );
    if payload(key, n) != bytes {
        return Err(format!(
            "{} bytes claiming counter {n} do not match",
            bytes.len()
        ));
    }
    Ok(n)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
