//! A release train over 20 queued branches with a trivial test command: the time borg spends
//! outside the test command, per branch. The baseline, run in the same process on a copy of
//! the same repository (same branches), is the same release done with the git CLI alone:
//! candidate worktree, `merge --no-ff` and the test command per branch, `main` fast-forwarded,
//! branches and worktrees deleted.
//!
//! Run with `cargo bench --bench train`. Target: < 3 s per branch outside the test command.

#[path = "../tests/support/pipeline_rig.rs"]
mod rig;

use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::pipeline::ports::{TestOutcome, TestRequest, TestRunError, TestRunner};
use actors::pipeline::train::{TrainMsg, train_actor_name};
use borg::sandbox::ProcessTestRunner;
use rig::{Act, PipelineRig, ScriptedAgent, git, spec_file};

const BRANCHES: u64 = 20;

/// The process runner, timing the train's runs.
#[derive(Default)]
struct Timed {
    train: Mutex<Duration>,
}

impl TestRunner for Timed {
    fn run(
        &self,
        request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>> {
        Box::pin(async move {
            let train = request.owner.starts_with("train-");
            let start = Instant::now();
            let outcome = ProcessTestRunner.run(request).await;
            if train {
                *self.train.lock().unwrap() += start.elapsed();
            }
            outcome
        })
    }
}

fn field<'a>(prompt: &'a str, name: &str) -> &'a str {
    prompt
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

/// The release by hand; returns (total, of which the test command).
fn baseline(repo: &Path) -> (Duration, Duration) {
    let start = Instant::now();
    let wt = repo.join(".worktrees/rc");
    let main = git(repo, &["rev-parse", "main"]);
    git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "rc",
            wt.to_str().unwrap(),
            &main,
        ],
    );
    let mut tests = Duration::ZERO;
    for n in 1..=BRANCHES {
        let branch = format!("borg/task-{n}");
        git(
            &wt,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("Merge {branch}"),
                &branch,
            ],
        );
        let t = Instant::now();
        let ok = Command::new("sh")
            .arg("test.sh")
            .current_dir(&wt)
            .output()
            .unwrap();
        tests += t.elapsed();
        assert!(ok.status.success(), "baseline tests pass");
    }
    git(repo, &["merge", "-q", "--ff-only", "rc"]);
    git(
        repo,
        &["worktree", "remove", "--force", wt.to_str().unwrap()],
    );
    git(repo, &["branch", "-q", "-D", "rc"]);
    for n in 1..=BRANCHES {
        let task_wt = repo.join(format!(".worktrees/task-{n}"));
        git(
            repo,
            &["worktree", "remove", "--force", task_wt.to_str().unwrap()],
        );
        git(repo, &["branch", "-q", "-D", &format!("borg/task-{n}")]);
    }
    (start.elapsed(), tests)
}

#[tokio::main]
async fn main() {
    let agent = ScriptedAgent::new(|phase, _, request| {
        let n: u64 = field(&request.prompt, "Task:")
            .trim_start_matches("branch ")
            .parse()
            .unwrap();
        match phase {
            "spec" => Act::write(&spec_file(request), "# Spec\n"),
            "qa" => Act::write(&format!("tests/t{n}.sh"), &format!("[ -f f{n}.txt ]\n")),
            _ => Act::write(&format!("f{n}.txt"), "x\n"),
        }
    });
    let timed = Arc::new(Timed::default());
    let rig = PipelineRig::start_full(&["bench"], agent, &[], |_| {}, timed.clone(), None).await;
    for n in 1..=BRANCHES {
        rig.create(None, &format!("branch {n}")).await.unwrap();
    }
    for n in 1..=BRANCHES {
        rig.finished(n).await;
    }
    // The same repository, branches and all, for the baseline.
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .args(["-a", rig.repo_path("bench").to_str().unwrap()])
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let base_repo = copy.path().join("bench");
    // Worktree records hold absolute paths: give the copy worktrees of its own.
    std::fs::remove_dir_all(base_repo.join(".worktrees")).unwrap();
    std::fs::remove_dir_all(base_repo.join(".git/worktrees")).unwrap();
    for n in 1..=BRANCHES {
        let wt = base_repo.join(format!(".worktrees/task-{n}"));
        let branch = format!("borg/task-{n}");
        git(
            &base_repo,
            &["worktree", "add", "-q", wt.to_str().unwrap(), &branch],
        );
    }

    let train: ractor::ActorRef<TrainMsg> = ractor::registry::where_is(train_actor_name("bench"))
        .expect("the train runs")
        .into();
    let number = ractor::call_t!(train, |r| TrainMsg::Start(Some(r)), 5_000)
        .unwrap()
        .expect("a train starts");
    let digest = loop {
        let snap = ractor::call_t!(train, TrainMsg::Get, 5_000).unwrap();
        if let Some(d) = snap
            .last
            .filter(|d| d.number == number && snap.run.is_none())
        {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(digest.merged.len() as u64, BRANCHES, "{digest:?}");
    let total = Duration::from_millis(digest.finished_ms - digest.started_ms);
    let tests = *timed.train.lock().unwrap();
    let borg = total.saturating_sub(tests);
    let (base_total, base_tests) = baseline(&base_repo);
    let base = base_total.saturating_sub(base_tests);
    let per = |d: Duration| d / BRANCHES as u32;
    println!("release train: {BRANCHES} queued branches, test command `sh test.sh`");
    println!("  borg train             {total:?} in all, {tests:?} of it in the test command");
    println!(
        "  borg outside the tests {:?} per branch (target < 3 s)",
        per(borg)
    );
    println!("  git CLI alone          {base_total:?} in all, {base_tests:?} in the test command");
    println!("  git CLI outside tests  {:?} per branch", per(base));
    println!(
        "  ratio borg / git CLI (outside the tests): {:.2}",
        borg.as_secs_f64() / base.as_secs_f64()
    );
    rig.stop().await;
}
