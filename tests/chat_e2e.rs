//! The whole chat path as a user meets it: the real `borg` binary, the real teloxide client
//! talking to a fake Telegram Bot API, and the real `claude` CLI talking to a scripted
//! Messages API — register a chat, mention the bot, get the answer, resume the session, and
//! survive `kill -9` without losing or duplicating an answer.

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/claude.rs"]
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use daemon_support::Daemon;
use fake_anthropic::FakeAnthropic;
use fake_telegram::{BOT_USERNAME, FakeTelegram, Fault};
use serde_json::Value;

const TOKEN: &str = "4242:e2e-token";
const GROUP: i64 = -100_777;
const ADMIN: i64 = 42;

fn start_borg(dir: &Path, claude: &Path, telegram: &FakeTelegram, api: &FakeAnthropic) -> Daemon {
    let child = daemon_support::borg(dir)
        .arg("run")
        .env("RUST_LOG", "info")
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
    Daemon(child)
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
    rig.borg.0.kill().unwrap(); // SIGKILL
    rig.borg.0.wait().unwrap();

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_platform_is_waited_out_and_the_answer_arrives_once() {
    let Some(rig) = Rig::registered().await else {
        return;
    };
    let telegram = &rig.telegram;
    // The next poll meets a bad gateway. (teloxide itself waits 10 s after any 5xx before it
    // reports it, so each server error here costs at least that.)
    telegram.fault("getUpdates", "", Fault::Status(502));
    // The answer meets a gateway that stalls for 2 s and times out, then a 1 s rate limit.
    let answer = "DONE: through the storm";
    telegram.fault("sendMessage", answer, Fault::Stall(Duration::from_secs(2)));
    telegram.fault("sendMessage", answer, Fault::RateLimit(1));
    telegram.push_update(message(
        2,
        7,
        &format!("@{BOT_USERNAME} hold on\nSAY: through the storm"),
    ));
    let attempts = |t: &FakeTelegram| -> Vec<std::time::Instant> {
        t.calls_of("sendMessage")
            .into_iter()
            .filter(|c| c.params["text"].as_str().unwrap_or("").contains(answer))
            .map(|c| c.at)
            .collect()
    };
    telegram
        .wait_until("the first refused attempt", Duration::from_secs(60), |t| {
            !attempts(t).is_empty()
        })
        .await;

    // While the answer waits, polling recovers and the chat goes on working.
    telegram.push_update(message(3, 7, "/ping"));
    telegram
        .wait_for_text(
            "/ping after the bad gateway",
            Duration::from_secs(60),
            "Borg online.",
        )
        .await;
    telegram
        .wait_for_text("the answer", Duration::from_secs(60), answer)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let texts = telegram.texts();
    let delivered: Vec<&String> = texts.iter().filter(|t| t.contains(answer)).collect();
    assert_eq!(delivered.len(), 1, "exactly one answer: {texts:?}");
    let pong = texts.iter().position(|t| t.contains("Borg online."));
    let done = texts.iter().position(|t| t.contains(answer));
    assert!(
        pong < done,
        "/ping was answered during the backoff: {texts:?}"
    );
    assert_eq!(telegram.pending_faults(), 0, "every fault was met");

    let at = attempts(telegram);
    assert_eq!(at.len(), 3, "two refusals, then the answer");
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // The stall (2 s) and the first backoff (5 s); then the 1 s the rate limit asked for.
    assert!(gaps[0] >= Duration::from_secs(7), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_secs(1), "{gaps:?}");
}
