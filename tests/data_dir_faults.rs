//! `DATA_DIR` full or read-only, on a small tmpfs of the test's own (mounted for the test;
//! root only, else a loud skip). The store on a disk that fills up refuses writes with the
//! system's reason, keeps serving reads, and writes again by itself once there is room,
//! holding exactly what it acknowledged; the real `borg` binary refuses to run on a
//! read-only `DATA_DIR`, says why, and leaves the store untouched.

#[path = "support/claude.rs"]
mod claude;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use daemon_support::{Daemon, borg};
use fake_anthropic::FakeAnthropic;
use fake_telegram::FakeTelegram;
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
    data.remount("rw");
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
