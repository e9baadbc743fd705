//! Auto-seeding with the real pipeline tree, real git and a real redb store: an idle
//! repository's seeder asks a (scripted) read-only agent for proposals and turns the good ones
//! into backlog tasks; malformed answers create nothing and say why.

#[path = "support/pipeline_rig.rs"]
mod rig;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::agent::AgentError;
use actors::pipeline::desk::{DeskMsg, desk};
use actors::pipeline::seed::{SeedMsg, SeedSettings, SeedSnapshot, seeder_name};
use ractor::ActorRef;
use rig::{Act, PipelineRig, ScriptedAgent, git};

const DESC: &str = "In src/lib.rs two loops do the same thing; make them one function.";

/// Seed runs answer `answer(run)` (0-based), after `work`; the tasks' own phases wait (the
/// agent "cannot start"), so seeded tasks stay unfinished.
fn seeding_agent(
    work: Duration,
    answer: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Arc<ScriptedAgent> {
    let runs = AtomicUsize::new(0);
    ScriptedAgent::new(move |phase, _, _| match phase {
        "seed" => Act {
            say: answer(runs.fetch_add(1, Ordering::SeqCst)),
            work,
            ..Act::default()
        },
        _ => Act {
            error: Some(AgentError::Spawn("no agent for tasks in this test".into())),
            ..Act::default()
        },
    })
}

fn tasks_json(titles: &[&str]) -> String {
    let tasks: Vec<String> = titles
        .iter()
        .map(|t| format!("{{\"title\":\"{t}\",\"description\":\"{DESC}\"}}"))
        .collect();
    format!("{{\"tasks\":[{}]}}", tasks.join(","))
}

fn short(ms: u64) -> SeedSettings {
    SeedSettings::new(Duration::from_millis(ms))
}

async fn seed_state(repo: &str) -> SeedSnapshot {
    let seeder: ActorRef<SeedMsg> = ractor::registry::where_is(seeder_name(repo))
        .expect("the seeder runs")
        .into();
    ractor::call_t!(seeder, SeedMsg::Get, 5_000).expect("the seeder answers")
}

/// Waits (at most 20 s) until the seeder has finished `runs` runs.
async fn after_runs(repo: &str, runs: u64) -> SeedSnapshot {
    for _ in 0..2000 {
        let snap = seed_state(repo).await;
        if snap.runs >= runs {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the seeder did not finish {runs} runs: {:?}",
        seed_state(repo).await
    );
}

async fn titles() -> Vec<String> {
    let list = ractor::call_t!(desk().expect("desk runs"), DeskMsg::List, 5_000).unwrap();
    list.into_iter().map(|t| t.title).collect()
}

async fn cancel(id: u64) {
    let desk = desk().expect("desk runs");
    ractor::call_t!(desk, DeskMsg::Cancel, 5_000, id, "test".into())
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_repo_gets_the_proposed_tasks_from_a_read_only_agent() {
    let seen: Arc<Mutex<Vec<(bool, String)>>> = Arc::default();
    let record = seen.clone();
    let agent = ScriptedAgent::new(move |phase, _, request| {
        if phase != "seed" {
            return Act {
                error: Some(AgentError::Spawn("not in this test".into())),
                ..Act::default()
            };
        }
        // What the agent finds in its working directory: the repository, detached at main.
        let head = git(&request.workdir, &["rev-parse", "HEAD"]);
        record
            .lock()
            .unwrap()
            .push((request.workdir.join("README.md").exists(), head));
        let json = tasks_json(&["Merge the duplicated loops", "Rename the helper module"]);
        Act {
            say: format!("I read the code.\n```json\n{json}\n```\nThat is all."),
            ..Act::default()
        }
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    let started = Instant::now();
    rig.seeder("app", short(400)).await;
    let snap = after_runs("app", 1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the cooldown"
    );
    assert_eq!(
        (snap.created, snap.last_error.as_deref()),
        (2, None),
        "{snap:?}"
    );
    assert_eq!(
        snap.recent_titles,
        ["Merge the duplicated loops", "Rename the helper module"]
    );
    assert_eq!(titles().await, snap.recent_titles);
    let task = rig.task(1).await;
    assert_eq!(task.task.requested_by, "seed:refactoring");
    assert!(
        task.task.description.starts_with(DESC),
        "{}",
        task.task.description
    );
    assert!(
        task.task
            .description
            .contains("Proposed by auto-seeding (mode: refactoring)")
    );
    let request = rig.agent.requests.lock().unwrap()[0].clone();
    assert!(
        request
            .prompt
            .starts_with("Phase: seed\nMode: refactoring\n"),
        "{}",
        request.prompt
    );
    assert_eq!(request.allowed_tools, ["Read", "Glob", "Grep", "Bash"]);
    assert_eq!(
        (request.owner.as_str(), request.resume.as_deref()),
        ("seed-app", None)
    );
    assert!(
        request
            .system_prompt
            .unwrap()
            .contains("must not create, change or delete")
    );
    assert!(
        request.home.ends_with("sessions/seed-app/home"),
        "{:?}",
        request.home
    );
    let repo = rig.repo_path("app");
    assert_eq!(request.workdir, repo.join(".worktrees/seed"));
    let main = git(&repo, &["rev-parse", "main"]);
    assert_eq!(seen.lock().unwrap()[0], (true, main), "a checkout of main");
    assert!(
        !request.workdir.exists(),
        "the scratch worktree is removed after the run"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_like_existing_tasks_or_each_other_are_dropped() {
    let agent = seeding_agent(Duration::ZERO, |_| {
        tasks_json(&[
            "Add config parser tests",
            "Remove dead code in slots",
            "Remove the dead code in slots",
            "Fix the race in the release train",
        ])
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add tests for the config parser")
        .await
        .unwrap();
    cancel(1).await; // finished tasks count for similarity too
    rig.seeder("app", short(300)).await;
    let snap = after_runs("app", 1).await;
    assert_eq!(snap.last_error, None);
    assert_eq!(
        titles().await,
        [
            "Add tests for the config parser",
            "Remove dead code in slots",
            "Fix the race in the release train"
        ]
    );
    let prompt = &rig.agent.prompts("seed")[0];
    assert!(
        prompt.contains("- Add tests for the config parser\n"),
        "the agent is told: {prompt}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_five_tasks_are_open_after_a_run() {
    let five = [
        "Merge the duplicated loops",
        "Rename the helper module",
        "Close leaked file handles",
        "Test the empty config path",
        "Split the oversized router",
    ];
    let agent = seeding_agent(Duration::from_millis(1500), move |_| tasks_json(&five));
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.seeder("app", short(300)).await;
    // While the agent reads, people ask for three tasks.
    for _ in 0..500 {
        if !rig.agent.prompts("seed").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for title in ["Person one asks", "Person two asks", "Person three asks"] {
        rig.create(None, title).await.unwrap();
    }
    let snap = after_runs("app", 1).await;
    assert_eq!(snap.recent_titles, five[..2], "{snap:?}");
    assert_eq!(titles().await.len(), 5);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cooldown_holds_between_runs_and_the_mode_rotates() {
    let agent = seeding_agent(Duration::ZERO, |_| "{\"tasks\": []}".into());
    let rig = PipelineRig::start(&["app"], agent).await;
    let started = Instant::now();
    // Without the cooldown, runs would follow each other at every check (250 ms).
    rig.seeder("app", short(1000)).await;
    let snap = after_runs("app", 4).await;
    assert_eq!((snap.created, snap.last_error.as_deref()), (0, None));
    let spans = rig.agent.spans.lock().unwrap().clone();
    let starts: Vec<Instant> = spans.iter().map(|s| s.2).collect();
    assert!(
        starts[0] - started >= Duration::from_millis(800),
        "{:?}",
        starts[0] - started
    );
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(800),
            "runs {:?} apart",
            pair[1] - pair[0]
        );
    }
    let modes: Vec<String> = rig
        .agent
        .prompts("seed")
        .iter()
        .map(|p| p.lines().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        modes[..4],
        [
            "Mode: refactoring",
            "Mode: bug-audit",
            "Mode: test-coverage",
            "Mode: refactoring"
        ]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_create_nothing_and_record_why() {
    let long = "x".repeat(120);
    let unknown_key = r#"{"tasks":[{"title":"Merge the loops",
        "description":"They repeat each other badly.","priority":"high"}]}"#;
    let seven =
        ["one", "two", "three", "four", "five", "six", "seven"].map(|n| format!("Task {n} here"));
    let answers = [
        "The code looks fine to me.".to_owned(),
        unknown_key.to_owned(),
        tasks_json(&[&long]),
        tasks_json(&seven.each_ref().map(String::as_str)),
    ];
    let agent = seeding_agent(Duration::ZERO, move |run| answers[run.min(3)].clone());
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.seeder("app", short(400)).await;
    let reasons = [
        "no JSON object",
        "task 1: unknown key \"priority\"",
        "task 1: the title is 120 characters long; 8 to 100 are allowed",
        "7 tasks proposed; at most 5 are allowed",
    ];
    for (n, reason) in reasons.iter().enumerate() {
        let snap = after_runs("app", n as u64 + 1).await;
        let error = snap.last_error.clone().unwrap_or_default();
        assert!(
            error.contains("malformed answer, nothing created") && error.contains(reason),
            "run {n}: {error}"
        );
        assert_eq!(snap.created, 0);
    }
    assert!(titles().await.is_empty());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_with_a_task_in_flight_is_not_seeded() {
    let agent = seeding_agent(Duration::ZERO, |_| {
        tasks_json(&["Merge the duplicated loops"])
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Something people asked for")
        .await
        .unwrap();
    rig.seeder("app", short(200)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(rig.agent.prompts("seed").is_empty());
    assert_eq!(seed_state("app").await.runs, 0);
    cancel(1).await;
    let snap = after_runs("app", 1).await;
    assert_eq!(snap.created, 1, "idle again, it seeds: {snap:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_seeder_waits_a_cooldown_after_its_first_start() {
    let agent = seeding_agent(Duration::ZERO, |_| panic!("no seeding within the hour"));
    let before = supervisors::snapshot::now_ms();
    let mut rig = PipelineRig::start(&["app"], agent).await;
    let first = seed_state("app").await;
    assert!(first.last_run_ms >= before && first.last_run_ms <= supervisors::snapshot::now_ms());
    assert_eq!(first.runs, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.restart().await;
    assert_eq!(seed_state("app").await, first, "a restart keeps the clock");
    assert!(rig.agent.requests.lock().unwrap().is_empty());
    rig.stop().await;
}
