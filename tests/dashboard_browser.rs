//! The dashboard in a real browser: the real `borg` binary with a pipeline repository and an
//! agent that keeps working (a stand-in `claude` that talks once a second), and headless
//! Chromium driven over WebDriver by Debian's chromedriver. The page shows the supervision
//! tree; an actor restarted through the API flashes and shows its new incarnation without a
//! reload, and the restart is listed among the lifecycle events; the task created with
//! `borg task add` is listed, and its page shows its history and the agent's output as it
//! streams. Screenshots go to `target/dashboard-screenshot.png` (the tree, kept by CI) and
//! `target/dashboard-task.png`.
//!
//! The daemon has a `WEB_TOKEN`, and the page is opened as `/?token=…`, so every request the
//! page makes (its own files, the API, the event streams) must carry it.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver`):
//! without them the test skips loudly, and fails under `BORG_TEST_STRICT=1` (CI).

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use borg::demo::{SAMPLE_TEST_COMMAND, create_sample_repo};
use serde_json::{Value, json};
use webdriver::{CHROMIUM, ChromeDriver, Session};

/// `WEB_TOKEN`: every request needs it, the page's own files included.
const TOKEN: &str = "dashboard-test-token";

/// A missing component: say so loudly, and fail instead when `BORG_TEST_STRICT=1` (CI).
fn skip(why: &str) {
    if std::env::var("BORG_TEST_STRICT").as_deref() == Ok("1") {
        panic!("BORG_TEST_STRICT=1 and {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// The daemon, killed when the test ends however it ends; its log is kept for failures.
struct Daemon {
    guard: daemon_support::Daemon,
    log: PathBuf,
}

impl Daemon {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn borg(dir: &Path) -> Command {
    let mut cmd = daemon_support::borg(dir);
    cmd.env("DATA_DIR", dir.join("data"));
    cmd
}

fn start_daemon(dir: &Path, repo: &Path, port: u16) -> Daemon {
    let claude = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dashboard-claude.sh");
    let log = dir.join("daemon.log");
    let child = borg(dir)
        .arg("run")
        .env("RUST_LOG", "info")
        .env("WEB_BIND", "127.0.0.1")
        .env("WEB_PORT", port.to_string())
        .env("WEB_TOKEN", TOKEN)
        .env("PIPELINE_REPO", repo)
        .env("PIPELINE_TEST_CMD", SAMPLE_TEST_COMMAND)
        .env("AGENT_SANDBOX", "process")
        .env("CLAUDE_BIN", &claude)
        .env("AGENT_IDLE_TIMEOUT_S", "120")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("borg starts");
    Daemon {
        guard: daemon_support::Daemon(child),
        log,
    }
}

/// GETs a JSON answer of the API.
async fn api(http: &reqwest::Client, base: &str, path: &str) -> Option<Value> {
    let answer = http
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    if !answer.status().is_success() {
        return None;
    }
    answer.json().await.ok()
}

/// Polls `probe` every 200 ms until it gives `Some`, or fails after `limit` with the
/// daemon's log.
async fn eventually<T, F, Fut>(daemon: &mut Daemon, what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if let Ok(Some(status)) = daemon.guard.0.try_wait() {
            panic!(
                "the daemon exited ({status}) while waiting for {what}:\n{}",
                daemon.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}; the daemon's log ends:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where the screenshots go: the target folder, where CI picks them up.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The actors the API lists.
fn actors(list: &Value) -> Vec<Value> {
    list.as_array()
        .or_else(|| list["actors"].as_array())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_tree_live_and_a_task_with_its_history_and_output() {
    if !Path::new(CHROMIUM).is_file() {
        skip("Chromium is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let Some(driver_bin) = webdriver::chromedriver() else {
        skip("chromedriver is not installed (apt-get install chromium-driver)");
        return;
    };

    // The daemon, with one repository and one task whose agent keeps talking.
    let dir = tempfile::tempdir().unwrap();
    let repo =
        create_sample_repo(&dir.path().join("repos")).expect("the sample repository (needs git)");
    let port = webdriver::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut daemon = start_daemon(dir.path(), &repo, port);
    let http = reqwest::Client::new();
    eventually(&mut daemon, "the HTTP API", Duration::from_secs(60), || {
        api(&http, &base, "/api/status")
    })
    .await;
    let added = borg(dir.path())
        .args([
            "task",
            "add",
            "Greet the dashboard",
            "--description",
            "Say hello to the browser.",
        ])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "borg task add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    eventually(
        &mut daemon,
        "task #1 in spec with agent output",
        Duration::from_secs(60),
        || async {
            let task = api(&http, &base, "/api/tasks/1").await?;
            let text = task.to_string();
            (text.contains("\"spec\"") && text.contains("working on it")).then_some(())
        },
    )
    .await;
    let desk = eventually(
        &mut daemon,
        "the desk in /api/actors",
        Duration::from_secs(10),
        || async {
            let list = api(&http, &base, "/api/actors").await?;
            actors(&list).into_iter().find(|a| a["kind"] == "desk")
        },
    )
    .await;
    let desk_path = desk["path"].as_str().unwrap().to_owned();

    // The browser.
    let driver = ChromeDriver::start(&driver_bin).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Session::new(&driver, profile.path())
        .await
        .expect("a Chromium session");
    // The token comes with the page's address, as a person would open it.
    browser
        .goto(&format!("{base}/?token={TOKEN}#/tree"))
        .await
        .unwrap();
    let limit = Duration::from_secs(15);

    // The tree: every actor the API lists, nested by path, and live.
    let selector = format!("#tree [data-path=\"{desk_path}\"]");
    let desk_el = browser
        .wait_for("the desk in the tree", limit, || async {
            browser.find(&selector).await
        })
        .await;
    let shown = browser.find_all("#tree [data-path]").await.unwrap().len();
    assert!(shown >= 5, "only {shown} actors in the tree");
    let nested = browser
        .execute(
            "return document.querySelector(arguments[0]).parentElement.closest('[data-path]')?.dataset.path ?? null",
            vec![json!(selector)],
        )
        .await
        .unwrap();
    let parent = desk_path.rsplit_once('/').map(|(p, _)| p.to_owned());
    assert_eq!(
        nested.as_str(),
        parent.as_deref(),
        "the desk sits under its supervisor"
    );
    browser
        .wait_for("the live indicator", limit, || async {
            let live = browser.find("#live[data-state=\"live\"]").await?;
            Ok(live.map(|_| ()))
        })
        .await;
    let started_before = browser
        .attribute(&desk_el, "data-started")
        .await
        .unwrap()
        .expect("data-started on the actor");

    // Kill the pipeline's desk through the API: the page flashes it and shows its new
    // incarnation.
    let restart = http
        .post(format!(
            "{base}/api/actors/{}/restart",
            encode_segment(&desk_path)
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        restart.status().is_success(),
        "restart: {} {}",
        restart.status(),
        restart.text().await.unwrap_or_default()
    );
    browser
        .wait_for("the desk to flash", limit, || async {
            let el = browser.find(&selector).await?;
            let Some(el) = el else { return Ok(None) };
            let class = browser.attribute(&el, "class").await?.unwrap_or_default();
            Ok(class.split(' ').any(|c| c == "flash").then_some(()))
        })
        .await;
    browser
        .wait_for("the desk's new incarnation", limit, || async {
            let el = browser.find(&selector).await?;
            let Some(el) = el else { return Ok(None) };
            let started = browser.attribute(&el, "data-started").await?;
            let started = started.unwrap_or_default();
            Ok((started != started_before && started != "0").then_some(()))
        })
        .await;
    let events = browser
        .find("#events")
        .await
        .unwrap()
        .expect("the event list");
    let events_text = browser.text(&events).await.unwrap();
    assert!(
        events_text.contains(&desk_path),
        "the restart is listed: {events_text}"
    );
    let shot = target_dir().join("dashboard-screenshot.png");
    browser.save_screenshot(&shot).await.unwrap();
    eprintln!("screenshot of the tree: {}", shot.display());

    // The task list, then the task's own page: history and streaming output.
    browser
        .goto(&format!("{base}/?token={TOKEN}#/tasks"))
        .await
        .unwrap();
    let row = browser
        .wait_for("task #1 in the list", limit, || async {
            browser.find("#tasks [data-task-id=\"1\"]").await
        })
        .await;
    let row_text = browser.text(&row).await.unwrap();
    assert!(
        row_text.contains("Greet the dashboard") && row_text.contains("spec"),
        "{row_text}"
    );
    browser.click(&row).await.unwrap();
    browser
        .wait_for("the task's page", limit, || async {
            browser.find("#task-detail[data-task-id=\"1\"]").await
        })
        .await;
    assert!(browser.current_url().await.unwrap().ends_with("#/tasks/1"));
    let history = browser
        .wait_for("the task's history", limit, || async {
            let el = browser.find("#task-history").await?;
            let Some(el) = el else { return Ok(None) };
            let text = browser.text(&el).await?;
            Ok(text.contains("spec").then_some(text))
        })
        .await;
    assert!(
        history.contains("backlog"),
        "backlog → spec in the history: {history}"
    );
    let lines_seen = browser
        .wait_for("streamed agent output", limit, || async {
            let lines = browser.find_all("#task-output .line").await?;
            Ok((lines.len() >= 2).then_some(lines.len()))
        })
        .await;
    // Live, not only the replay: the agent says something new every second.
    browser
        .wait_for("more output while watching", limit, || async {
            let lines = browser.find_all("#task-output .line").await?;
            Ok((lines.len() > lines_seen).then_some(()))
        })
        .await;
    let output = browser.find("#task-output").await.unwrap().unwrap();
    assert!(
        browser
            .text(&output)
            .await
            .unwrap()
            .contains("working on it")
    );
    let task_shot = target_dir().join("dashboard-task.png");
    browser.save_screenshot(&task_shot).await.unwrap();
    eprintln!("screenshot of the task: {}", task_shot.display());

    let errors = browser.browser_errors().await.unwrap();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    browser.close().await.unwrap();
    drop(driver);
    drop(daemon);
}

/// An actor path as one URL path segment (it holds slashes and colons).
fn encode_segment(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
