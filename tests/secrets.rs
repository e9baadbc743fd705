//! Secrets stay where they are needed. The real daemon gets known secrets — the Telegram bot
//! token, the model credential and the dashboard token — and does real work with them: a chat
//! registered and answered, a pipeline task through every phase and released, the dashboard
//! and its API read. Then everything borg wrote is searched for them: its log, every API
//! answer and the metrics, every chat message it sent, every file under `DATA_DIR` (the redb
//! store with all snapshots, the agents' session homes), the repository's files and history,
//! and the prompts and tools' output the agents sent to the model. Only the model credential
//! may reach the model (in its request headers, which are not searched), and nothing else
//! may hold any of them.

#[path = "support/claude.rs"]
mod claude;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use borg::demo::{DEMO_TASK_TITLE, SAMPLE_TEST_COMMAND, create_sample_repo, demo_script};
use borg::model::ScriptedModel;
use daemon_support::{Daemon, borg, free_port};
use fake_telegram::{BOT_USERNAME, FakeTelegram};

const TELEGRAM_TOKEN: &str = "5151:KNOWN-telegram-secret-token";
const MODEL_KEY: &str = "sk-ant-KNOWN-model-secret-key-0123456789";
const WEB_TOKEN: &str = "KNOWN-dashboard-secret-token";
const GROUP: i64 = -100_555;
const ADMIN: i64 = 42;

/// Every file under `dir` (following no symlinks), with its bytes.
fn files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files(&path, out);
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push((path, bytes));
        }
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn eventually(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..1200 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_written_anywhere_it_is_not_needed() {
    let Some(claude) = claude::locate_claude() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
    let model = ScriptedModel::start(demo_script()).await.unwrap();
    let telegram = FakeTelegram::start(TELEGRAM_TOKEN).await;
    let port = free_port();
    let log = dir.path().join("daemon.log");
    let _daemon = Daemon(
        borg(dir.path())
            .arg("run")
            .env("RUST_LOG", "debug")
            .env("WEB_PORT", port.to_string())
            .env("WEB_TOKEN", WEB_TOKEN)
            .env("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN)
            .env("TELEGRAM_API_URL", &telegram.url)
            .env("BORG_ADMIN_USERS", format!("tg:{ADMIN}"))
            .env("PIPELINE_ADMIN_CHAT", format!("tg:{GROUP}"))
            .env("PIPELINE_REPO", &repo)
            .env("PIPELINE_TEST_CMD", SAMPLE_TEST_COMMAND)
            .env("AGENT_SANDBOX", "process")
            .env("AUTO_SEED", "false")
            .env("SELF_UPDATE", "false")
            .env("CLAUDE_BIN", &claude)
            .env("ANTHROPIC_BASE_URL", model.base_url())
            .env("ANTHROPIC_API_KEY", MODEL_KEY)
            .env("COLLECTION_WINDOW_MS", "200")
            .env("COOLDOWN_MS", "200")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("borg starts"),
    );

    // Real work with the secrets: a chat answered, a task through every phase, released.
    let message = |id, from, text: &str| fake_telegram::group_message(GROUP, id, from, text);
    telegram.push_update(message(1, ADMIN, "/register"));
    telegram
        .wait_for_text("registration", Duration::from_secs(30), "Registered")
        .await;
    telegram.push_update(message(2, 7, &format!("@{BOT_USERNAME} hi\nSAY: all fine")));
    telegram
        .wait_for_text("chat answer", Duration::from_secs(60), "DONE: all fine")
        .await;
    let task = format!("/task {DEMO_TASK_TITLE}\nAdd greet.sh.");
    telegram.push_update(message(3, ADMIN, &task));
    telegram
        .wait_for_text("task done", Duration::from_secs(120), "test → done")
        .await;
    telegram.push_update(message(4, ADMIN, "/release"));
    telegram
        .wait_for_text("release digest", Duration::from_secs(120), "merged #1")
        .await;

    // Everything the dashboard and the API answer, with the token.
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut answers: Vec<(String, Vec<u8>)> = Vec::new();
    for path in [
        "/",
        "/api/status",
        "/api/actors",
        "/api/tasks",
        "/api/tasks/1",
        "/api/queue",
        "/api/groups",
        "/metrics",
    ] {
        let mut body = Vec::new();
        eventually(path, async || {
            let Ok(resp) = client
                .get(format!("{base}{path}"))
                .bearer_auth(WEB_TOKEN)
                .send()
                .await
            else {
                return false;
            };
            let ok = resp.status().is_success();
            body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            ok
        })
        .await;
        answers.push((path.to_owned(), body));
    }

    let mut places: Vec<(String, Vec<u8>)> = answers;
    places.push(("the daemon's log".into(), std::fs::read(&log).unwrap()));
    for (i, text) in telegram.texts().into_iter().enumerate() {
        places.push((format!("chat message {i}"), text.into_bytes()));
    }
    let mut written = Vec::new();
    files(&dir.path().join("data"), &mut written);
    files(&repo, &mut written);
    // The search reads what is really there: the store holds the task in clear.
    assert!(
        written
            .iter()
            .any(|(p, bytes)| p.ends_with("borg.redb") && holds(bytes, DEMO_TASK_TITLE)),
        "the store is among the files searched, readable"
    );
    for (path, bytes) in written {
        places.push((path.display().to_string(), bytes));
    }
    let history = Command::new("git")
        .args(["log", "--all", "-p"])
        .current_dir(&repo)
        .output()
        .unwrap()
        .stdout;
    places.push(("the repository's history".into(), history));
    for (i, body) in model.message_requests().into_iter().enumerate() {
        places.push((format!("model request {i}"), body.to_string().into_bytes()));
    }

    let mut found = Vec::new();
    for (place, bytes) in &places {
        for (name, secret) in [
            ("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN),
            ("ANTHROPIC_API_KEY", MODEL_KEY),
            ("WEB_TOKEN", WEB_TOKEN),
        ] {
            if holds(bytes, secret) {
                found.push(format!("{name} in {place}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets found: {found:#?}");
    assert!(places.len() > 20, "searched {} places", places.len());
}
