//! Orchestration overhead per pipeline task: the time a task takes from creation to done
//! with an instant scripted agent and a trivial test command, minus the time of the test
//! command runs themselves. The baseline, run in the same process, is the same git work and
//! test runs done by a plain sequence of git commands (what a shell script would do).
//!
//! Run with `cargo bench --bench pipeline`. Target: < 2 s of overhead per task.

#[path = "../tests/support/pipeline_rig.rs"]
mod rig;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use actors::pipeline::phase::Status;
use rig::{Act, PipelineRig, ScriptedAgent, git, sample_repo, spec_file};

const TASKS: u64 = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run_tests(dir: &Path) -> Duration {
    let start = Instant::now();
    let _ = Command::new("sh").arg("test.sh").current_dir(dir).status();
    start.elapsed()
}

/// The same steps by hand: branch and worktree, three commits, red and green test runs,
/// worktree removed.
fn baseline(root: &Path, n: u64) -> (Duration, Duration) {
    let repo = sample_repo(root, &format!("base{n}"));
    let start = Instant::now();
    let wt = repo.join(".worktrees/task");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "borg/task",
            wt.to_str().unwrap(),
            "main",
        ],
    );
    let mut tests = Duration::ZERO;
    for (file, body) in [
        (".borg/spec.md", "spec"),
        ("tests/greet_test.sh", "[ \"$(sh greet.sh)\" = hello ]\n"),
        ("greet.sh", "echo hello\n"),
    ] {
        let path = wt.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        if file == "greet.sh" {
            tests += run_tests(&wt);
        }
        git(&wt, &["add", "-A"]);
        git(&wt, &["commit", "-q", "-m", file]);
        if file.starts_with("tests/") {
            tests += run_tests(&wt);
        }
    }
    git(
        &repo,
        &["worktree", "remove", "--force", wt.to_str().unwrap()],
    );
    (start.elapsed(), tests)
}

#[tokio::main]
async fn main() {
    let agent = ScriptedAgent::new(|phase, _, request| match phase {
        "spec" => {
            let file = spec_file(request);
            Act::write(&file, "# Spec\n")
        }
        "qa" => Act::write("tests/greet_test.sh", "[ \"$(sh greet.sh)\" = hello ]\n"),
        _ => Act::write("greet.sh", "echo hello\n"),
    });
    let rig = PipelineRig::start(&["bench"], agent).await;
    let scratch = tempfile::tempdir().unwrap();
    let (mut task_times, mut base_times, mut test_times) = (vec![], vec![], vec![]);
    for n in 1..=TASKS {
        let (base, tests) = baseline(scratch.path(), n);
        base_times.push(base);
        test_times.push(tests);
        rig.create(None, &format!("task {n}")).await.unwrap();
        let done = rig.finished(n).await;
        assert_eq!(done.status, Status::Done, "{done:?}");
        let end = done.history.last().unwrap().at_ms;
        task_times.push(Duration::from_millis(end - done.created_ms));
    }
    let (task, base, tests) = (median(task_times), median(base_times), median(test_times));
    let overhead = task.saturating_sub(tests);
    println!("pipeline: {TASKS} tasks, instant scripted agent, test command `sh test.sh`");
    println!("  task created → done      median {task:?}");
    println!("  test command runs        median {tests:?} per task (2 runs)");
    println!("  orchestration overhead   median {overhead:?} per task (target < 2 s)");
    println!("  baseline (git by hand)   median {base:?} per task");
    println!(
        "  ratio pipeline / baseline: {:.2}",
        task.as_secs_f64() / base.as_secs_f64()
    );
    rig.stop().await;
}
