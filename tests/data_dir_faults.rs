//! `DATA_DIR` full or read-only, on a small tmpfs of the test's own (mounted for the test;
//! root only, else a loud skip). The store on a disk that fills up refuses writes with the
//! system's reason, keeps serving reads, and writes again by itself once there is room,
//! holding exactly what it acknowledged; the real `borg` binary refuses to run on a
//! read-only `DATA_DIR`, says why, and leaves the store untouched; and chat messages that
//! arrive while `DATA_DIR` is full are not lost but answered, once, when there is room again.

#[path = "support/claude.rs"]
mod claude;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::{Daemon, borg};
use fake_anthropic::FakeAnthropic;
use fake_telegram::{BOT_USERNAME, FakeTelegram};
use serde_json::Value;

const TOKEN: &str = "7171:data-dir-token";
const GROUP: i64 = -100_717;
const ADMIN: i64 = 42;

/// A tmpfs mounted at a folder of the test's, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (after a loud skip) when this process may not mount (not root, no capability).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::piped())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_owned())),
            Ok(out) => {
                claude::skip(&format!(
                    "cannot mount a tmpfs for DATA_DIR (run as root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                None
            }
            Err(e) => {
                claude::skip(&format!("cannot run mount: {e}"));
                None
            }
        }
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The daemon, its log in `dir/daemon.log` and its dashboard on `port`.
fn start(
    dir: &Path,
    claude: &Path,
    telegram: &FakeTelegram,
    api: &FakeAnthropic,
    port: u16,
) -> Daemon {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let child = borg(dir)
        .arg("run")
        .env("RUST_LOG", "info")
        .env("DATA_DIR", dir.join("data"))
        .env("WEB_PORT", port.to_string())
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &telegram.url)
        .env("BORG_ADMIN_USERS", format!("tg:{ADMIN}"))
        .env("CLAUDE_BIN", claude)
        .env("AGENT_SANDBOX", "process")
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("COLLECTION_WINDOW_MS", "200")
        .env("COOLDOWN_MS", "200")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("borg starts");
    Daemon(child)
}

fn message(id: i64, from: i64, text: &str) -> Value {
    fake_telegram::group_message(GROUP, id, from, text)
}

/// Fills the file system of `dir` to the last byte with a file `filler`, and returns its path.
fn fill_up(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    loop {
        // `write_all` goes on through short writes, so it stops only when nothing fits.
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

/// Waits until the daemon's log contains `needle`.
async fn wait_for_log(log: &Path, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {needle:?} in the daemon's log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the daemon's log when the test fails, before its folder is removed.
struct ShowLogOnFailure(PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("---- the daemon's log ----\n{log}---- end of the daemon's log ----");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_dir_is_refused_at_start_and_left_untouched() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        return;
    };
    let telegram = FakeTelegram::start(TOKEN).await;
    let api = FakeAnthropic::start().await;
    let port = daemon_support::free_port();
    let mut daemon = start(dir.path(), &claude, &telegram, &api, port);
    telegram.push_update(message(1, ADMIN, "/register"));
    telegram
        .wait_for_text("registration", Duration::from_secs(30), "Registered")
        .await;
    // Stopped cleanly (SIGTERM), then the folder becomes read-only.
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    daemon.0.wait().unwrap();
    data.remount("ro");
    let file = data.0.join(borg::store::FILE_NAME);
    let before = std::fs::read(&file).unwrap();

    let out = borg(dir.path())
        .env("DATA_DIR", dir.path().join("data"))
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &telegram.url)
        .arg("run")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "refused to run without a writable store"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Read-only file system") && said.contains("DATA_DIR"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the store is untouched"
    );
    // `borg status` reads it all the same, still without touching it.
    assert_status_reads_untouched(dir.path(), &file, &before);

    // The same after a crash: a store not shut down cleanly is repaired in a copy elsewhere.
    data.remount("rw");
    let mut daemon = start(dir.path(), &claude, &telegram, &api, port);
    telegram.push_update(message(2, ADMIN, "/ping"));
    telegram
        .wait_until("the second life answers", Duration::from_secs(30), |t| {
            t.texts()
                .iter()
                .filter(|x| x.contains("Borg online."))
                .count()
                == 1
        })
        .await;
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    data.remount("ro");
    let crashed = std::fs::read(&file).unwrap();
    assert_status_reads_untouched(dir.path(), &file, &crashed);
    data.remount("rw");
}

/// `borg status --json` with no daemon lists the registered chat's snapshot, and the store
/// file is byte-for-byte `before` afterwards.
fn assert_status_reads_untouched(dir: &Path, file: &Path, before: &[u8]) {
    let out = borg(dir)
        .env("DATA_DIR", dir.join("data"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "borg status on a read-only DATA_DIR: {said}"
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = status["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.contains(&format!("chat/group/tg:{GROUP}").as_str()),
        "{keys:?}"
    );
    assert!(
        std::fs::read(file).unwrap() == before,
        "the store is untouched"
    );
}

/// The whole chat path on a `DATA_DIR` that fills up: the messages of a group chat that arrive
/// while nothing can be saved are not lost (the group cannot keep them, so the Telegram
/// poller does not move past them and asks for them again). Once there is room again the
/// mention among them is answered exactly once, by a run that saw the plain messages sent
/// meanwhile; commands, which need no disk, are answered even while it is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_messages_sent_while_data_dir_is_full_are_answered_once_it_has_room() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Room enough, once freed, for the store and the agent's session files.
    let Some(data) = Tmpfs::mount(&dir.path().join("data"), "64m") else {
        return;
    };
    let telegram = FakeTelegram::start(TOKEN).await;
    let api = FakeAnthropic::start().await;
    let port = daemon_support::free_port();
    let log = dir.path().join("daemon.log");
    let _show_log = ShowLogOnFailure(log.clone());
    let _daemon = start(dir.path(), &claude, &telegram, &api, port);
    telegram.push_update(message(1, ADMIN, "/register"));
    telegram
        .wait_for_text("registration", Duration::from_secs(30), "Registered")
        .await;
    // The disk fills only once the daemon is done saving the registration: the poller asks
    // for the updates after /register once it has saved that offset. Filling up while that
    // save is under way would make it, not the messages below, meet the full disk.
    telegram
        .wait_until(
            "the offset past /register saved",
            Duration::from_secs(30),
            |t| {
                t.calls_of("getUpdates")
                    .iter()
                    .any(|c| c.params["offset"] == 2)
            },
        )
        .await;

    let filler = fill_up(&data.0);
    let plain = ["the build is red again", "it fails in the store tests"];
    telegram.push_update(message(2, 7, plain[0]));
    telegram.push_update(message(3, 7, plain[1]));
    const TRIGGER: i64 = 4;
    let ask = format!("@{BOT_USERNAME} what is 2+2?\nSAY: four");
    telegram.push_update(message(TRIGGER, 7, &ask));
    // The daemon has really met the full disk: taking these messages in could not be saved.
    wait_for_log(&log, "snapshot store cannot write", Duration::from_secs(30)).await;

    // A command is answered by the router, which needs no disk. Its check waits until after
    // the main assertions so that a failure here cannot hide whether messages were lost.
    telegram.push_update(message(5, 7, "/ping"));
    // The poller asks again for the batch it could not have kept every 10 s at most.
    let pong_deadline = Instant::now() + Duration::from_secs(30);
    let pong = |t: &FakeTelegram| t.texts().iter().any(|x| x.contains("Borg online."));
    while !pong(&telegram) && Instant::now() < pong_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pong_while_full = pong(&telegram);

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let answers = |t: &FakeTelegram| -> Vec<String> {
        t.sent()
            .into_iter()
            .filter(|s| s.chat_id == GROUP && s.reply_to == Some(TRIGGER))
            .map(|s| s.text)
            .collect()
    };
    // Generous: on a loaded machine the store's probe, the poller's backoff and the run all
    // take their time.
    telegram
        .wait_until(
            "the answer to the mention sent while DATA_DIR was full",
            Duration::from_secs(120),
            |t| !answers(t).is_empty(),
        )
        .await;
    eprintln!(
        "answered {:?} after DATA_DIR had room again",
        freed.elapsed()
    );
    // Time for a second answer (a redelivered message run again) to show up, if there is one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        answers(&telegram),
        vec!["DONE: four"],
        "exactly one answer to the mention: {:?}",
        telegram.texts()
    );
    let requests = api.message_requests();
    let run = requests
        .iter()
        .map(Value::to_string)
        .find(|r| r.contains("what is 2+2?"))
        .expect("the run asked the model");
    for text in plain {
        assert!(
            run.contains(text),
            "the run saw {text:?}, sent while DATA_DIR was full: {run}"
        );
    }
    assert!(
        pong_while_full,
        "/ping was answered while DATA_DIR was full: {:?}",
        telegram.texts()
    );
}

/// The store itself on a disk that fills up: the failing commit is refused with the
/// system's reason, later writes are refused at once saying what to do, reads go on, and once
/// there is room again it writes by itself; reopened, it holds exactly what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_a_full_disk_refuses_clearly_then_writes_again_by_itself() {
    use supervisors::snapshot::SnapshotStore;
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        return;
    };
    let filler = data.0.join("filler");
    std::fs::write(&filler, vec![0u8; 12 << 20]).unwrap();
    let store = borg::store::Store::open(&data.0).unwrap();
    let snapshot = |i: usize| vec![i as u8; 100_000];
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..100 {
        let key = format!("actor/{i}");
        let saved = match store.claim(&key).await {
            Ok(claim) => store.save(&key, claim.incarnation, snapshot(i)).await,
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) => acked.push(i),
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk filled up");
    assert!(refusal.contains("No space left"), "{refusal}");
    assert!(!acked.is_empty());
    // Refused at once now, saying what is wrong and what to do.
    let again = store.save("actor/0", 1, b"x".to_vec()).await.unwrap_err();
    let again = again.to_string();
    assert!(
        again.contains("cannot write") && again.contains("free space"),
        "{again}"
    );
    // Reads go on.
    let first = store.load("actor/0").await.unwrap().unwrap();
    assert_eq!(first.bytes, snapshot(0));

    // Room again: it writes by itself (it retries at most once a second).
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.save("actor/0", 1, b"after".to_vec()).await {
            Ok(()) => break,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "never wrote again: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;

    let store = borg::store::Store::open(&data.0).unwrap();
    assert_eq!(
        store.load("actor/0").await.unwrap().unwrap().bytes,
        b"after"
    );
    for &i in &acked[1..] {
        let key = format!("actor/{i}");
        let loaded = store
            .load(&key)
            .await
            .unwrap()
            .expect("an acknowledged snapshot");
        assert_eq!(loaded.bytes, snapshot(i), "{key}");
    }
    let refused_key = format!("actor/{}", acked.len());
    let refused = store.load(&refused_key).await.unwrap();
    assert!(
        refused.is_none_or(|s| s.bytes.is_empty()),
        "the refused save left nothing"
    );
    store.close().await;
}
