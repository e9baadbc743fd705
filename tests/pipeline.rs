//! The pipeline's phases, failure paths and scheduling, with real git repositories, a real
//! redb store and real test commands; the agent is scripted (see support/pipeline_rig.rs).

#[path = "support/pipeline_rig.rs"]
mod rig;

use std::path::Path;
use std::time::Duration;

use actors::pipeline::phase::Status;
use rig::{Act, PipelineRig, ScriptedAgent, git, path, spec_file};

const TEST: &str = "tests/greet_test.sh";
const TEST_BODY: &str = "#!/bin/sh\n[ \"$(sh greet.sh)\" = \"hello\" ]\n";

/// spec and qa as a good team does them; `impl_act` decides the implementation attempts.
fn team(impl_act: impl Fn(u32) -> Act + Send + Sync + 'static) -> std::sync::Arc<ScriptedAgent> {
    ScriptedAgent::new(move |phase, attempt, request| match phase {
        "spec" => {
            let file = spec_file(request);
            Act::write(&file, "# Spec\ngreet.sh prints hello.\n")
        }
        "qa" => Act::write(TEST, TEST_BODY),
        "impl" => impl_act(attempt),
        other => panic!("unexpected phase {other}"),
    })
}

fn greet(text: &str) -> Act {
    Act::write("greet.sh", &format!("#!/bin/sh\necho {text}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_comes_twice_makes_one_task_even_across_a_restart() {
    let mut rig = PipelineRig::start(&["app"], team(|_| greet("hello"))).await;
    let first = rig
        .create_requested(None, "Add a greeting", Some("tg:1/5"))
        .await
        .unwrap();
    // A chat delivering the same `/task` again after borg was killed.
    rig.restart().await;
    let again = rig
        .create_requested(None, "Add a greeting", Some("tg:1/5"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "the same request, the same task");
    let other = rig
        .create_requested(None, "Add a greeting", Some("tg:1/6"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id, "another message is another task");
    rig.finished(first.id).await;
    rig.finished(other.id).await;
    assert_eq!(rig.list().await.len(), 2, "no task invented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_goes_through_every_phase_with_red_then_green_tests() {
    let rig = PipelineRig::start(&["app"], team(|_| greet("hello"))).await;
    let task = rig.create(None, "Add a greeting").await.unwrap();
    assert_eq!((task.id, task.repo.as_str()), (1, "app"));
    let done = rig.finished(1).await;
    use Status::*;
    assert_eq!(
        path(&done),
        [Backlog, Spec, Qa, Impl, Test, Done],
        "{done:?}"
    );
    let wt = done.worktree.clone().unwrap();
    assert_eq!(wt, rig.repo_path("app").join(".worktrees/task-1"));
    // Real commits on the task's branch: spec, tests, implementation.
    let log = git(&wt, &["log", "--format=%s", "main..borg/task-1"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "impl: Add a greeting (attempt 1)",
            "tests: Add a greeting",
            "spec: Add a greeting"
        ]
    );
    // The QA tests were red at their commit and are green at the head.
    let qa = done.qa_commit.clone().unwrap();
    assert_eq!(done.qa_files, [TEST]);
    git(&wt, &["checkout", "-q", &qa]);
    let at_qa = std::process::Command::new("sh")
        .arg("test.sh")
        .current_dir(&wt)
        .status()
        .unwrap();
    assert!(
        !at_qa.success(),
        "the QA tests fail before the implementation"
    );
    git(&wt, &["checkout", "-q", "borg/task-1"]);
    let at_head = std::process::Command::new("sh")
        .arg("test.sh")
        .current_dir(&wt)
        .status()
        .unwrap();
    assert!(at_head.success(), "and pass after it");
    // Sessions continue from phase to phase.
    let requests = rig.agent.requests.lock().unwrap().clone();
    assert_eq!(requests[0].resume, None);
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.resume.as_deref() == Some("session-task-1"))
    );
    // Each persona gets its tools.
    assert_eq!(requests[0].allowed_tools, ["Read", "Glob", "Grep", "Write"]);
    assert!(requests[2].allowed_tools.contains(&"Bash".to_owned()));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_gets_the_error_and_passes_on_attempt_two() {
    let agent = team(|attempt| greet(if attempt == 1 { "goodbye" } else { "hello" }));
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let done = rig.finished(1).await;
    assert_eq!(done.status, Status::Done, "{done:?}");
    assert_eq!(done.impl_attempts, 2);
    let prompts = rig.agent.prompts("impl");
    assert_eq!(prompts.len(), 2);
    assert!(!prompts[0].contains("previous attempt failed"));
    assert!(
        prompts[1].contains("The previous attempt failed")
            && prompts[1].contains("FAIL tests/greet_test.sh"),
        "the second attempt is told what failed: {}",
        prompts[1]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_different_failures_fail_the_task() {
    // Each attempt fails differently: its complaint (on stderr) reaches the test output.
    let agent = team(|attempt| {
        let word = ["a", "b", "c", "d"][attempt as usize % 4];
        Act::write("greet.sh", &format!("#!/bin/sh\necho wrong-{word} >&2\n"))
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Failed, "{task:?}");
    assert_eq!(task.impl_attempts, 3);
    assert!(
        task.reason.as_deref().unwrap().contains("failed"),
        "{:?}",
        task.reason
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_three_times_is_blocked_as_a_stuck_loop() {
    // Different code each time (so each attempt is a real commit), failing the same way.
    let agent = team(|attempt| greet(&format!("goodbye # try {attempt}")));
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Blocked, "{task:?}");
    assert!(task.history.iter().all(|t| !t.note.contains("no change")));
    assert_eq!(task.signatures.len(), 3);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_edits_the_qa_tests_has_them_restored() {
    // The worker "fixes" the test instead of the code, and writes no greet.sh.
    let cheat = |attempt: u32| {
        if attempt == 1 {
            Act::write(TEST, "#!/bin/sh\nexit 0\n")
        } else {
            greet("hello")
        }
    };
    let rig = PipelineRig::start(&["app"], team(cheat)).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Done, "{task:?}");
    let wt = task.worktree.unwrap();
    assert_eq!(std::fs::read_to_string(wt.join(TEST)).unwrap(), TEST_BODY);
    let prompts = rig.agent.prompts("impl");
    assert!(
        prompts[1].contains("were restored"),
        "the worker is told: {}",
        prompts[1]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_claims_done_without_a_commit_is_not_done() {
    let lazy = |attempt: u32| {
        if attempt == 1 {
            Act {
                say: "All done, everything works!".into(),
                ..Act::default()
            }
        } else {
            greet("hello")
        }
    };
    let rig = PipelineRig::start(&["app"], team(lazy)).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Done);
    assert_eq!(
        task.impl_attempts, 2,
        "the empty claim cost an attempt: {task:?}"
    );
    assert!(task.history.iter().any(|t| t.note.contains("no change")));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_run_a_phase_at_once_but_two_tasks_of_one_repo_do_not() {
    let agent = ScriptedAgent::new(|phase, _, request| {
        let slow = Duration::from_millis(300);
        let mut act = match phase {
            "spec" => {
                let file = spec_file(request);
                Act::write(&file, "spec")
            }
            "qa" => Act::write(TEST, TEST_BODY),
            _ => greet("hello"),
        };
        act.work = slow;
        act
    });
    let rig = PipelineRig::start(&["one", "two"], agent).await;
    rig.create(Some("one"), "A").await.unwrap();
    rig.create(Some("two"), "B").await.unwrap();
    rig.create(Some("one"), "C").await.unwrap();
    for id in 1..=3 {
        assert_eq!(rig.finished(id).await.status, Status::Done);
    }
    let spans = rig.agent.spans.lock().unwrap().clone();
    let overlap = |a: &(String, String, std::time::Instant, std::time::Instant),
                   b: &(String, String, std::time::Instant, std::time::Instant)| {
        a.2 < b.3 && b.2 < a.3
    };
    let specs: Vec<_> = spans.iter().filter(|s| s.1 == "spec").collect();
    let find = |owner: &str| *specs.iter().find(|s| s.0 == owner).unwrap();
    assert!(
        overlap(find("task-1"), find("task-2")),
        "repos one and two specced at once"
    );
    for phase in ["spec", "qa", "impl"] {
        let of = |owner: &str| spans.iter().find(|s| s.0 == owner && s.1 == phase).unwrap();
        assert!(
            !overlap(of("task-1"), of("task-3")),
            "{phase}: tasks 1 and 3 of repo one took turns"
        );
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly() {
    let rig = PipelineRig::start(&["app"], team(|_| greet("hello"))).await;
    let err = rig.create(Some("nope"), "X").await.unwrap_err();
    assert!(
        err.contains("no repository named \"nope\"") && err.contains("app"),
        "{err}"
    );
    let err = rig.create(None, "   ").await.unwrap_err();
    assert!(err.contains("title"), "{err}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_phase_redoes_only_that_phase() {
    // The first implementation run is slow enough to be cut off by the restart.
    let agent = team(|_| Act {
        work: Duration::from_millis(800),
        ..greet("hello")
    });
    let mut rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    for _ in 0..100 {
        if rig.agent.prompts("impl").len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.task(1).await.status, Status::Impl);
    rig.restart().await;
    let done = rig.finished(1).await;
    assert_eq!(done.status, Status::Done, "{done:?}");
    // spec and qa had finished: they did not run again; the cut-off impl ran once more,
    // still as attempt 1 (an attempt that never finished is not counted).
    assert_eq!(rig.agent.prompts("spec").len(), 1);
    assert_eq!(rig.agent.prompts("qa").len(), 1);
    assert_eq!(rig.agent.prompts("impl").len(), 2);
    assert_eq!(done.impl_attempts, 1);
    let log = git(
        &done.worktree.unwrap(),
        &["log", "--format=%s", "main..borg/task-1"],
    );
    assert_eq!(log.lines().count(), 3, "no duplicated commit: {log}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_the_agents_committed_themselves_counts() {
    // As after a crash between borg's commit and its snapshot: the phase's work is already
    // committed when borg looks, so there is nothing left for borg to commit.
    let agent = ScriptedAgent::new(|phase, _, request| {
        let mut act = match phase {
            "spec" => {
                let file = spec_file(request);
                Act::write(&file, "spec")
            }
            "qa" => Act::write(TEST, TEST_BODY),
            _ => greet("hello"),
        };
        act.commit = phase != "spec";
        act
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Done, "{task:?}");
    assert_eq!(
        task.impl_attempts, 1,
        "the committed work was not taken for no work"
    );
    assert_eq!(task.qa_files, [TEST]);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_or_a_crashing_runner_waits_without_spending_attempts() {
    use actors::agent::AgentError;
    let impl_runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let runs = impl_runs.clone();
    let agent = team(move |_| {
        match runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            // The model API is overloaded (the CLI gave up retrying).
            0 => Act {
                error: Some(AgentError::Api {
                    status: Some(529),
                    kind: Some("overloaded_error".into()),
                    message: "Overloaded".into(),
                }),
                ..Act::default()
            },
            // A bug panics inside the step.
            1 => Act {
                panic: true,
                ..Act::default()
            },
            _ => greet("hello"),
        }
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let task = rig.finished(1).await;
    assert_eq!(task.status, Status::Done, "{task:?}");
    assert_eq!(rig.agent.prompts("impl").len(), 3);
    assert_eq!(
        task.impl_attempts, 1,
        "neither the outage nor the panic counted: {:?}",
        task.history
    );
    assert_eq!(task.waiting, None, "the wait is over");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_deleted_or_locked_mid_task_is_repaired_and_no_attempt_spent() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let outage = || actors::agent::AgentError::Api {
        status: Some(529),
        kind: Some("overloaded_error".into()),
        message: "Overloaded".into(),
    };
    let qa_runs = std::sync::Arc::new(AtomicU32::new(0));
    let runs = qa_runs.clone();
    let good = team(|_| greet("hello"));
    let agent = ScriptedAgent::new(move |phase, attempt, request| {
        if phase == "qa" {
            let wt = &request.workdir;
            match runs.fetch_add(1, Ordering::SeqCst) {
                // Someone deletes the worktree by hand while the agent runs (which then
                // meets a model outage, so the phase is tried again).
                0 => {
                    std::fs::remove_dir_all(wt).unwrap();
                    return Act {
                        error: Some(outage()),
                        ..Act::default()
                    };
                }
                // The agent's git is killed in the middle of a commit: its lock stays.
                1 => {
                    let git_dir = git(wt, &["rev-parse", "--absolute-git-dir"]);
                    std::fs::write(Path::new(&git_dir).join("index.lock"), "").unwrap();
                    return Act {
                        error: Some(outage()),
                        ..Act::default()
                    };
                }
                _ => {}
            }
        }
        good.play(phase, attempt, request)
    });
    let rig = PipelineRig::start(&["app"], agent).await;
    rig.create(None, "Add a greeting").await.unwrap();
    let done = rig.finished(1).await;
    use Status::*;
    assert_eq!(
        path(&done),
        [Backlog, Spec, Qa, Impl, Test, Done],
        "{done:?}"
    );
    assert_eq!(qa_runs.load(Ordering::SeqCst), 3);
    assert_eq!(done.impl_attempts, 1);
    let wt = done.worktree.clone().unwrap();
    let log = git(&wt, &["log", "--format=%s", "main..borg/task-1"]);
    assert_eq!(log.lines().count(), 3, "spec, tests, implementation: {log}");
    let app = rig.repo_path("app");
    let list = git(&app, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 2, "{list}");
    assert!(!list.contains("prunable"), "{list}");
    assert_eq!(
        git(&app, &["status", "--porcelain"]),
        "",
        "main's checkout untouched"
    );
    rig.stop().await;
}

/// A sandbox that can go away: the agent is refused while it is down, and the gate's probe
/// sees the same.
#[derive(Default)]
struct Engine(std::sync::atomic::AtomicBool);

impl Engine {
    fn is_down(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl actors::pipeline::gate::SandboxProbe for Engine {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let down = self.is_down();
        Box::pin(async move {
            if down {
                Err("still down".into())
            } else {
                Ok(())
            }
        })
    }
}

#[derive(Default)]
struct AdminChat(std::sync::Mutex<Vec<String>>);

impl actors::pipeline::ports::Announcer for AdminChat {
    fn announce(&self, _chat: &str, text: String) {
        self.0.lock().unwrap().push(text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_going_away_pauses_the_pipeline_once_and_resumes_it() {
    use std::sync::Arc;
    let engine = Arc::new(Engine::default());
    let admin = Arc::new(AdminChat::default());
    let gate = actors::pipeline::gate::SandboxGate::with_probe_interval(
        engine.clone(),
        Some((admin.clone(), "tg:42".into())),
        Duration::from_millis(50),
        Duration::from_millis(200),
    );
    let down = engine.clone();
    let good = team(|_| greet("hello"));
    let agent = ScriptedAgent::new(move |phase, attempt, request| {
        if down.is_down() {
            return Act {
                error: Some(actors::agent::AgentError::Spawn(
                    "the Docker engine does not answer".into(),
                )),
                ..Act::default()
            };
        }
        good.play(phase, attempt, request)
    });
    engine.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let rig = PipelineRig::start_full(
        &["app", "lib"],
        agent,
        &[],
        |_| {},
        Arc::new(borg::sandbox::ProcessTestRunner),
        Some(gate.clone()),
    )
    .await;
    rig.create(Some("app"), "Add a greeting").await.unwrap();
    rig.create(Some("lib"), "Add a greeting").await.unwrap();

    // A task meets the outage; the gate opens and holds both, with no retry storm.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while gate.open_reason().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the outage was not met"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tried = rig.agent.requests.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.agent.requests.lock().unwrap().len(),
        tried,
        "no agent is started while the gate is open"
    );
    for id in [1, 2] {
        let task = rig.task(id).await;
        assert_eq!(task.status, Status::Spec, "{task:?}");
        assert_eq!(task.phase_attempts, 0, "the outage spent no attempt");
    }

    // The engine is back: the gate closes by itself and both tasks finish.
    engine.0.store(false, std::sync::atomic::Ordering::SeqCst);
    for id in [1, 2] {
        let task = rig.finished(id).await;
        assert_eq!(task.status, Status::Done, "{task:?}");
        assert_eq!(task.impl_attempts, 1);
    }
    assert_eq!(gate.open_reason(), None);
    let told = admin.0.lock().unwrap().clone();
    assert_eq!(
        told.len(),
        2,
        "the admin is told once, and once more at the end: {told:?}"
    );
    assert!(
        told[0].contains("paused") && told[0].contains("Docker engine"),
        "{told:?}"
    );
    assert!(told[1].contains("resumed"), "{told:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_still_shown_after_a_restart() {
    let mut rig = PipelineRig::start(&["app"], team(|_| greet("hello"))).await;
    rig.create(None, "Add a greeting").await.unwrap();
    assert_eq!(rig.finished(1).await.status, Status::Done);
    rig.restart().await;
    // No actor runs for a finished task now; its snapshot answers.
    let task = rig.task(1).await;
    assert_eq!(task.status, Status::Done);
    assert_eq!(task.history.len(), 5);
    // And ids keep counting.
    assert_eq!(rig.create(None, "Another").await.unwrap().id, 2);
    rig.stop().await;
}
