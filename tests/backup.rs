//! `borg backup` and `borg restore`: a backup taken under heavy snapshot traffic holds every
//! snapshot acked before it began and restores to a store that opens; backups through a
//! running daemon; restore refusing garbage, foreign and newer files and a running daemon,
//! and keeping the store it replaces. Plus the CLI's completions and help examples.

#[path = "support/daemon.rs"]
mod daemon_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use borg::store::Store;
use borg::store::format::{META_TABLE, SNAPSHOTS_TABLE, STORE_META_KEY, encode_store_meta};
use redb::{Database, TableDefinition};
use supervisors::snapshot::SnapshotStore;

/// Snapshot bytes as the actors write them: the `BSNP` header (version 1), then `n`.
fn snapshot(n: u64, padding: usize) -> Vec<u8> {
    let mut bytes = b"BSNP".to_vec();
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes.resize(bytes.len() + padding, 0xAB);
    bytes
}

fn counter_of(bytes: &[u8]) -> u64 {
    assert_eq!(&bytes[..4], b"BSNP");
    u64::from_le_bytes(bytes[6..14].try_into().unwrap())
}

fn borg(dir: &Path) -> Command {
    let mut cmd = daemon_support::borg_inheriting_env(dir);
    cmd.env_remove("DATA_DIR")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("DISCORD_ENABLED")
        .env_remove("WHATSAPP_ENABLED")
        .env_remove("PIPELINE_REPO")
        .env_remove("WATCHED_REPOS")
        .env("AGENT_SANDBOX", "process");
    cmd
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_heavy_snapshot_traffic_restores_every_snapshot_acked_before_it() {
    const WRITERS: usize = 64;
    const STILL_KEYS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();

    // Keys that do not change: enough data that the copy takes a while.
    let mut fill = Vec::new();
    for i in 0..STILL_KEYS {
        let store = store.clone();
        fill.push(tokio::spawn(async move {
            let key = format!("still/{i}");
            let claim = store.claim(&key).await.unwrap();
            store
                .save(&key, claim.incarnation, snapshot(i, 1000))
                .await
                .unwrap();
        }));
    }
    for f in fill {
        f.await.unwrap();
    }

    // Writers saving as fast as the store acks; `acked[i]` is writer i's last acked counter.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let key = format!("busy/{w}");
            let claim = store.claim(&key).await.unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                store
                    .save(&key, claim.incarnation, snapshot(n, 200))
                    .await
                    .unwrap();
                acked[w].store(n, Ordering::SeqCst);
            }
        }));
    }
    let started = Instant::now();
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < 3) {
        assert!(started.elapsed() < Duration::from_secs(30), "writers stuck");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let target = dir.path().join("backup.redb");
    let backup_started = Instant::now();
    let copied = Arc::new(AtomicU64::new(0));
    let seen = copied.clone();
    let summary = store
        .backup_to(
            &target,
            false,
            Box::new(move |n| seen.store(n, Ordering::Relaxed)),
        )
        .await
        .unwrap();
    let after: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let during: u64 = before.iter().zip(&after).map(|(b, a)| a - b).sum();
    eprintln!(
        "backup of {} keys ({} KB) took {:?}; {during} saves were acked meanwhile",
        summary.keys,
        summary.bytes / 1024,
        backup_started.elapsed()
    );
    assert!(during > 0, "the writers kept saving while the backup ran");
    assert_eq!(summary.keys, copied.load(Ordering::Relaxed));
    // meta (1 key) + snapshots (still + busy keys).
    assert_eq!(summary.keys, 1 + STILL_KEYS + WRITERS as u64);
    assert_eq!(summary.tables, 2);
    store.close().await;

    // A second backup to the same file is refused without --force.
    let again = Store::open(&dir.path().join("data")).unwrap();
    let refused = again
        .backup_to(&target, false, Box::new(|_| {}))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    again.close().await;

    // Restore into a fresh DATA_DIR and open it as the daemon would.
    let restored_dir = dir.path().join("restored");
    let done = borg::backup::restore(&restored_dir, &target, false, Box::new(|_| {})).unwrap();
    assert_eq!(done.previous, None);
    assert_eq!(done.contents.keys, STILL_KEYS + WRITERS as u64);
    let restored = Store::open(&restored_dir).unwrap();
    for w in 0..WRITERS {
        let got = restored.load(&format!("busy/{w}")).await.unwrap().unwrap();
        let n = counter_of(&got.bytes);
        // Everything acked before the backup began is in it; at most the one save per
        // writer that was committed but not yet acked when `after` was read is beyond.
        assert!(
            n >= before[w] && n <= after[w] + 1,
            "busy/{w}: {n} not in {}..={}",
            before[w],
            after[w] + 1
        );
    }
    for i in (0..STILL_KEYS).step_by(997) {
        let got = restored.load(&format!("still/{i}")).await.unwrap().unwrap();
        assert_eq!(got.bytes, snapshot(i, 1000));
    }
    restored.close().await;
}

/// `borg run` on `dir`'s DATA_DIR, once its control socket answers.
fn start_daemon(dir: &Path) -> Child {
    let child = borg(dir)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.join("data/borg.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop_daemon(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn keys(data: &Path) -> Vec<(String, Option<u64>)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(data).unwrap();
        let list = store.list().await.unwrap();
        store.close().await;
        list.into_iter()
            .map(|k| (k.key, k.saved_at_ms))
            .collect::<Vec<_>>()
    })
}

#[test]
fn backup_through_a_running_daemon_and_restore_once_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = start_daemon(dir.path());
    let backup = dir.path().join("b1.redb");

    let (ok, out, err) = run(borg(dir.path()).arg("backup").arg("b1.redb"));
    assert!(ok, "{out}{err}");
    assert!(out.contains("through the running daemon"), "{out}");
    assert!(backup.is_file());

    let (ok, _, err) = run(borg(dir.path()).arg("backup").arg(&backup));
    assert!(
        !ok && err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let (ok, out, err) = run(borg(dir.path()).args(["backup", "--force"]).arg(&backup));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(borg(dir.path())
        .arg("backup")
        .arg(dir.path().join("no/such/dir/b")));
    assert!(!ok && err.contains("does not exist"), "{err}");

    // The daemon holds the store: restore refuses.
    let (ok, _, err) = run(borg(dir.path()).arg("restore").arg(&backup));
    assert!(!ok && err.contains("stop it first"), "{err}");
    stop_daemon(daemon);

    // The daemon may have saved more after the backup (shutdown), never fewer keys.
    let original = keys(&data);
    let backed_up = keys_of_file(&backup);
    assert!(!backed_up.is_empty());
    let names = |keys: &[(String, Option<u64>)]| -> Vec<String> {
        keys.iter().map(|(k, _)| k.clone()).collect()
    };
    for name in names(&backed_up) {
        assert!(
            names(&original).contains(&name),
            "{name} in the backup only"
        );
    }

    let (ok, out, err) = run(borg(dir.path()).arg("restore").arg(&backup));
    assert!(ok, "{out}{err}");
    assert!(out.contains("kept as"), "{out}");
    let kept = data.join("borg.redb.before-restore");
    assert_eq!(keys_of_file(&kept), original);
    assert_eq!(keys(&data), backed_up);

    // A second restore would lose the kept store: refused without --force.
    let (ok, _, err) = run(borg(dir.path()).arg("restore").arg(&backup));
    assert!(
        !ok && err.contains("earlier restore") && err.contains("--force"),
        "{err}"
    );
    let (ok, out, err) = run(borg(dir.path()).args(["restore", "--force"]).arg(&backup));
    assert!(ok, "{out}{err}");

    // The restored store is the daemon's again.
    let daemon = start_daemon(dir.path());
    stop_daemon(daemon);
}

/// The keys of a store file, read through a scratch DATA_DIR.
fn keys_of_file(file: &Path) -> Vec<(String, Option<u64>)> {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(file, scratch.path().join("borg.redb")).unwrap();
    keys(scratch.path())
}

#[test]
fn backup_without_a_daemon_opens_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(borg(dir.path()).arg("backup").arg("b.redb"));
    assert!(!ok && err.contains("nothing to back up"), "{err}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&dir.path().join("data")).unwrap();
        for i in 0..100u64 {
            let key = format!("k/{i}");
            let claim = store.claim(&key).await.unwrap();
            store
                .save(&key, claim.incarnation, snapshot(i, 10))
                .await
                .unwrap();
        }
        store.close().await;
    });
    let (ok, out, err) = run(borg(dir.path()).arg("backup").arg("b.redb"));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("backup written") && !out.contains("daemon"),
        "{out}"
    );
    let summary = borg::backup::verify_file(&dir.path().join("b.redb"), &mut |_| {}).unwrap();
    assert_eq!((summary.keys, summary.snapshots), (100, 100));
    // Backing the store up onto itself is refused, even with --force.
    let (ok, _, err) = run(borg(dir.path()).args(["backup", "--force", "data/borg.redb"]));
    assert!(!ok && err.contains("live store"), "{err}");
}

/// A redb file with `meta` holding `meta` (if any) and an empty `snapshots` table.
fn redb_file(path: &Path, meta: Option<&[u8]>, other_table: bool) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    if let Some(meta) = meta {
        tx.open_table(META_TABLE)
            .unwrap()
            .insert(STORE_META_KEY, meta)
            .unwrap();
        tx.open_table(SNAPSHOTS_TABLE).unwrap();
    }
    if other_table {
        let users: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
        tx.open_table(users)
            .unwrap()
            .insert("ann", &b"x"[..])
            .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn restore_refuses_what_is_not_a_backup_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("borg.redb"), b"the current store").unwrap();
    let file = |name: &str| -> PathBuf { dir.path().join(name) };

    std::fs::write(file("garbage"), vec![0x5a; 4096]).unwrap();
    std::fs::write(file("empty"), b"").unwrap();
    redb_file(&file("foreign.redb"), None, true);
    redb_file(&file("bad-meta.redb"), Some(b"OTHERAPP\x01\x00"), false);
    let newer = encode_store_meta(borg::store::format::STORE_FORMAT_VERSION + 1);
    redb_file(&file("newer.redb"), Some(&newer), false);
    let cases = [
        ("garbage", "not a redb database"),
        ("empty", "is empty"),
        ("foreign.redb", "without borg's meta table"),
        ("bad-meta.redb", "no borg magic"),
        ("newer.redb", "newer borg"),
        ("missing", "cannot read"),
    ];
    for (name, why) in cases {
        let (ok, _, err) = run(borg(dir.path()).arg("restore").arg(file(name)));
        assert!(!ok, "{name} restored");
        assert!(err.contains(why), "{name}: {err}");
        assert_eq!(
            std::fs::read(data.join("borg.redb")).unwrap(),
            b"the current store"
        );
        assert!(!data.join("borg.redb.before-restore").exists());
    }

    // A valid backup replaces even a store borg cannot read, which is kept.
    let good = file("good.redb");
    redb_file(&good, Some(&encode_store_meta(1)), false);
    let (ok, out, err) = run(borg(dir.path()).arg("restore").arg(&good));
    assert!(ok, "{out}{err}");
    assert_eq!(
        std::fs::read(data.join("borg.redb.before-restore")).unwrap(),
        b"the current store"
    );
    assert!(keys(&data).is_empty());
}

#[test]
fn completions_and_help_examples() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(borg(dir.path()).args(["completions", "bash"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("_borg()") && out.contains("complete -F _borg"),
        "{out}"
    );
    assert!(out.contains("backup") && out.contains("doctor"), "{out}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (ok, out, err) = run(borg(dir.path()).args(["completions", shell]));
        assert!(ok && out.contains("borg"), "{shell}: {err}");
    }
    // Completions and help need no valid configuration.
    std::fs::write(dir.path().join(".env"), "MAX_CONCURRENT_AGENTS=lots\n").unwrap();
    let (ok, out, _) = run(borg(dir.path()).args(["backup", "--help"]));
    assert!(
        ok && out.contains("Examples:") && out.contains("borg backup /"),
        "{out}"
    );
    for command in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["status", "--help"],
        vec!["doctor", "--help"],
        vec!["restore", "--help"],
        vec!["completions", "--help"],
        vec!["task", "add", "--help"],
        vec!["tasks", "--help"],
        vec!["image", "build", "--help"],
        vec!["demo", "--help"],
    ] {
        let (ok, out, _) = run(borg(dir.path()).args(&command));
        assert!(ok && out.contains("Example"), "{command:?}: {out}");
    }
    let (ok, out, _) = run(borg(dir.path()).args(["completions", "bash"]));
    assert!(ok && out.contains("_borg()"), "{out}");
}
