//! The Docker engine going away under a running daemon: the real `borg` binary with agents in
//! real containers, reaching the real engine through a switch (support/engine_switch.rs)
//! that the test turns off in the middle of a task and on again. The pipeline's breaker
//! opens, the admin chat hears of it once, chat keeps answering, no attempt is spent; when
//! the engine is back the breaker closes by itself, the task finishes, and the container the
//! outage cut off is removed.

#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/engine_switch.rs"]
mod engine_switch;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/git.rs"]
mod git_support;

use std::process::Stdio;
use std::time::Duration;

use borg::demo::{DEMO_TASK_TITLE, create_sample_repo, demo_script};
use borg::model::ScriptedModel;
use daemon_support::Daemon;
use engine_switch::EngineSwitch;
use fake_telegram::FakeTelegram;
use git_support::git;
use serde_json::Value;

const TOKEN: &str = "5151:outage-token";
const GROUP: i64 = -100_515;
const ADMIN: i64 = 42;
const PAUSED: &str = "Pipeline paused";
const RESUMED: &str = "Pipeline resumed";

fn message(id: i64, from: i64, text: &str) -> Value {
    fake_telegram::group_message(GROUP, id, from, text)
}

fn count(telegram: &FakeTelegram, needle: &str) -> usize {
    telegram
        .texts()
        .iter()
        .filter(|t| t.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stopping_mid_task_pauses_the_pipeline_once_and_it_resumes() {
    let Some(engine) = docker::engine_with_image().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(&dir.path().join("repos")).unwrap();
    let switch = EngineSwitch::on(dir.path());
    let telegram = FakeTelegram::start(TOKEN).await;
    let model = ScriptedModel::start(demo_script()).await.unwrap();
    let world = daemon_support::PipelineWorld {
        token: TOKEN,
        telegram_url: &telegram.url,
        admin: ADMIN,
        group: GROUP,
        repo: &repo,
        model_url: &model.base_url(),
    };
    let child = daemon_support::containerized_pipeline(dir.path(), &world)
        .env("DOCKER_HOST", switch.host())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("borg starts");
    let _daemon = Daemon(child);

    telegram.push_update(message(1, ADMIN, "/register"));
    telegram
        .wait_for_text("registration", Duration::from_secs(30), "Registered")
        .await;
    let task = format!("/task {DEMO_TASK_TITLE}\nAdd greet.sh, which prints a greeting.");
    telegram.push_update(message(2, ADMIN, &task));

    // The engine goes away while the task's first agent runs in its container.
    let container = docker::wait_for_container(&engine, "task-1").await;
    for _ in 0..200 {
        let state = engine.inspect_container(&container, None).await.ok();
        if state.and_then(|s| s.state?.running).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    switch.turn_off();
    telegram
        .wait_for_text("the pause", Duration::from_secs(60), PAUSED)
        .await;
    let paused = telegram
        .texts()
        .into_iter()
        .find(|t| t.contains(PAUSED))
        .unwrap();
    assert!(paused.contains("Docker engine"), "{paused}");

    // Chat keeps working meanwhile, and nobody is told twice.
    telegram.push_update(message(3, 7, "/ping"));
    telegram
        .wait_for_text(
            "/ping during the outage",
            Duration::from_secs(30),
            "Borg online.",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&telegram, PAUSED), 1, "{:#?}", telegram.texts());
    assert_eq!(count(&telegram, RESUMED), 0);

    // Back again: the breaker closes by itself and the task finishes.
    switch.turn_on();
    telegram
        .wait_for_text("the resumption", Duration::from_secs(60), RESUMED)
        .await;
    telegram
        .wait_for_text("task done", Duration::from_secs(300), "test → done")
        .await;
    assert_eq!(count(&telegram, PAUSED), 1, "{:#?}", telegram.texts());
    assert_eq!(count(&telegram, RESUMED), 1, "{:#?}", telegram.texts());

    // No attempt was spent on the outage: one run per phase made it, each reported once.
    let log = git(&repo, &["log", "--format=%s", "main..borg/task-1"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            format!("impl: {DEMO_TASK_TITLE} (attempt 1)"),
            format!("tests: {DEMO_TASK_TITLE}"),
            format!("spec: {DEMO_TASK_TITLE}"),
        ]
    );
    for step in ["backlog → spec", "spec → qa", "qa → impl", "impl → test"] {
        assert_eq!(count(&telegram, step), 1, "{step}: {:#?}", telegram.texts());
    }
    assert!(
        !telegram.texts().iter().any(|t| t.contains("retry")),
        "{:#?}",
        telegram.texts()
    );
    // The container the outage cut off is gone too.
    docker::wait_until_gone(&engine, "task-1").await;
}
