//! The whole chat path as a user meets it: the real `borg` binary, the real teloxide client
//! talking to a fake Telegram Bot API, and the real `claude` CLI talking to a scripted
//! Messages API — register a chat, mention the bot, get the answer, resume the session, and
//! survive `kill -9` without losing or duplicating an answer.

#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/claude.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fake_anthropic::FakeAnthropic;
use fake_telegram::{BOT_USERNAME, FakeTelegram};
use serde_json::Value;

const TOKEN: &str = "4242:e2e-token";
const GROUP: i64 = -100_777;
const ADMIN: i64 = 42;

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_borg(dir: &Path, claude: &Path, telegram: &FakeTelegram, api: &FakeAnthropic) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_borg"))
        .args(["--dir", dir.to_str().unwrap(), "run"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("WEB_PORT", free_port().to_string())
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &telegram.url)
        .env("BORG_ADMIN_USERS", format!("tg:{ADMIN}"))
        .env("CLAUDE_BIN", claude)
        // The CLI on the host; chat runs inside containers are in tests/pipeline_e2e.rs.
        .env("AGENT_SANDBOX", "process")
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("COLLECTION_WINDOW_MS", "200")
        .env("COOLDOWN_MS", "200")
        // A stalled model ends a run after 5 s instead of the default 5 minutes.
        .env("AGENT_IDLE_TIMEOUT_S", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("borg starts");
    Daemon { child }
}

fn message(id: i64, from: i64, text: &str) -> Value {
    fake_telegram::group_message(GROUP, id, from, text)
}

/// A daemon with a registered group chat, and the fakes it talks to.
struct Rig {
    claude: std::path::PathBuf,
    dir: tempfile::TempDir,
    telegram: FakeTelegram,
    api: FakeAnthropic,
    borg: Daemon,
}

impl Rig {
    /// `None` (after a loud skip) when the `claude` CLI is not installed.
    async fn registered() -> Option<Rig> {
        let claude = support::locate_claude()?;
        let dir = tempfile::tempdir().unwrap();
        let telegram = FakeTelegram::start(TOKEN).await;
        let api = FakeAnthropic::start().await;
        let borg = start_borg(dir.path(), &claude, &telegram, &api);
        telegram.push_update(message(1, ADMIN, "/register"));
        telegram
            .wait_for_text("registration", Duration::from_secs(30), "Registered")
            .await;
        Some(Rig {
            claude,
            dir,
            telegram,
            api,
            borg,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_chat_talks_to_claude_code_with_sessions_that_continue() {
    let Some(rig) = Rig::registered().await else {
        return;
    };
    let (telegram, api) = (&rig.telegram, &rig.api);

    let first = format!("@{BOT_USERNAME} please greet us\nSAY: hello builders");
    telegram.push_update(message(2, 7, &first));
    telegram
        .wait_for_text(
            "first answer",
            Duration::from_secs(60),
            "DONE: hello builders",
        )
        .await;
    let answer = telegram
        .sent()
        .into_iter()
        .find(|s| s.text.contains("DONE: hello builders"))
        .unwrap();
    assert_eq!(
        (answer.chat_id, answer.reply_to),
        (GROUP, Some(2)),
        "answers the mention"
    );

    let second = format!("@{BOT_USERNAME} again\nSAY: second answer");
    telegram.push_update(message(3, 7, &second));
    telegram
        .wait_for_text(
            "second answer",
            Duration::from_secs(60),
            "DONE: second answer",
        )
        .await;
    // A resumed session sends the earlier conversation along with the new prompt.
    let requests = api.message_requests();
    let last = requests.last().unwrap();
    let turns = last["messages"].as_array().map_or(0, Vec::len);
    assert!(
        turns >= 3,
        "the second run resumed the first session: {turns} messages"
    );
    assert!(
        last.to_string().contains("hello builders"),
        "the earlier exchange is part of the resumed conversation"
    );

    for (cmd, expect) in [
        ("/ping", "Borg online."),
        ("/chatid", "tg:-100777"),
        ("/version", "borg "),
    ] {
        let before = telegram.texts().len();
        telegram.push_update(message(10 + before as i64, 7, cmd));
        telegram
            .wait_until(cmd, Duration::from_secs(10), |t| {
                t.texts()[before..].iter().any(|x| x.contains(expect))
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_loses_no_message_and_duplicates_no_answer() {
    let Some(mut rig) = Rig::registered().await else {
        return;
    };
    let (telegram, api) = (&rig.telegram, &rig.api);

    // The model stalls, so the run is in flight when the daemon is killed.
    telegram.push_update(message(2, 7, &format!("@{BOT_USERNAME} think hard\nSTALL")));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while api.message_requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.borg.child.kill().unwrap(); // SIGKILL
    rig.borg.child.wait().unwrap();

    // While it is down, someone asks again. After the restart the interrupted trigger is run
    // again (the model still stalls, so it ends in an honest error after the idle timeout),
    // then the new message is answered: each exactly once.
    telegram.push_update(message(
        3,
        7,
        &format!("@{BOT_USERNAME} are you there?\nSAY: back again"),
    ));
    let _borg = start_borg(rig.dir.path(), &rig.claude, telegram, api);
    telegram
        .wait_for_text(
            "answer after restart",
            Duration::from_secs(90),
            "DONE: back again",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = telegram.texts();
    let done: Vec<&String> = all.iter().filter(|t| t.starts_with("DONE")).collect();
    assert_eq!(
        done,
        vec!["DONE: back again"],
        "one answer, not two: {all:?}"
    );
    let sorry: Vec<&String> = all.iter().filter(|t| t.starts_with("Sorry")).collect();
    assert_eq!(
        sorry.len(),
        1,
        "the interrupted trigger was run again once: {all:?}"
    );
    assert!(sorry[0].contains("silent"), "{}", sorry[0]);
    let registrations = telegram
        .texts()
        .iter()
        .filter(|t| t.starts_with("Registered"))
        .count();
    assert_eq!(registrations, 1, "the /register update was not redelivered");
}

/// A port nobody listens on now, for the daemon's dashboard.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
