//! Release trains with real git repositories, a bare remote, a real redb store and real test
//! commands; the agents are scripted (support/pipeline_rig.rs).
//!
//! The team below makes three tasks whose branches each pass their own tests:
//! - "Add greet" (greet.sh; notes.txt says A): merges cleanly;
//! - "Add notes" (notes.txt says B): conflicts with "Add greet" in notes.txt;
//! - "Add shout" (shout.sh must print greet.sh's words in capitals): its first version only
//!   passes while greet.sh does not exist, so it breaks the tests once "Add greet" is merged.

#[path = "support/pipeline_rig.rs"]
mod rig;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actors::pipeline::phase::Status;
use actors::pipeline::train::state::{CANDIDATE, TrainSnapshot};
use actors::pipeline::train::{TrainMsg, train_actor_name};
use rig::{Act, PipelineRig, ScriptedAgent, git, spec_file};

fn field<'a>(prompt: &'a str, name: &str) -> &'a str {
    prompt
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

fn team() -> Arc<ScriptedAgent> {
    ScriptedAgent::new(|phase, attempt, request| {
        let title = field(&request.prompt, "Task:");
        match (phase, title) {
            ("spec", _) => Act::write(&spec_file(request), "# Spec\nDo it.\n"),
            ("qa", "Add greet") => {
                Act::write("tests/greet_test.sh", "[ \"$(sh greet.sh)\" = hello ]\n")
            }
            ("qa", "Add notes") => Act::write("tests/notes_test.sh", "grep -q B notes.txt\n"),
            ("qa", "Add shout") => Act::write(
                "tests/shout_test.sh",
                "[ -f shout.sh ] && [ \"$(sh shout.sh)\" = \"$(sh greet.sh 2>/dev/null | tr a-z A-Z)\" ]\n",
            ),
            ("impl", "Add greet") => Act {
                files: vec![
                    ("greet.sh".into(), "echo hello\n".into()),
                    ("notes.txt".into(), "A\n".into()),
                ],
                say: "done".into(),
                ..Act::default()
            },
            ("impl", "Add notes") => Act::write("notes.txt", "B\n"),
            // The first attempt is wrong in a way only main's greet.sh reveals.
            ("impl", "Add shout") if attempt == 1 => Act::write("shout.sh", "echo\n"),
            ("impl", "Add shout") => Act::write("shout.sh", "sh greet.sh | tr a-z A-Z\n"),
            ("rebase", "Add notes") => Act::write("notes.txt", "A\nB\n"),
            other => panic!("unexpected {other:?}"),
        }
    })
}

/// A bare `origin` for repository `name`, and a test command that logs which commit it ran
/// on, and where, into `<root>/tests-<name>.log`.
fn with_remote_and_test_log(root: &Path, name: &str) {
    let repo = root.join(name);
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let log = root.join(format!("tests-{name}.log"));
    let test_sh = std::fs::read_to_string(repo.join("test.sh")).unwrap();
    std::fs::write(
        repo.join("test.sh"),
        format!(
            "echo \"$(git rev-parse HEAD) $(pwd)\" >> {}\n{test_sh}",
            log.display()
        ),
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "log test runs"]);
    git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&repo, &["push", "-q", "origin", "main"]);
}

async fn train(_rig: &PipelineRig, repo: &str) -> ractor::ActorRef<TrainMsg> {
    ractor::registry::where_is(train_actor_name(repo))
        .unwrap_or_else(|| panic!("{repo}'s train runs"))
        .into()
}

/// Starts a train on `repo` and waits until it has finished (at most 60 s).
async fn release(rig: &PipelineRig, repo: &str) -> TrainSnapshot {
    let train = train(rig, repo).await;
    let number = ractor::call_t!(train, |reply| TrainMsg::Start(Some(reply)), 5_000)
        .unwrap()
        .expect("a train starts");
    finished_train(rig, repo, number).await
}

async fn finished_train(rig: &PipelineRig, repo: &str, number: u64) -> TrainSnapshot {
    for _ in 0..600 {
        let snap = ractor::call_t!(train(rig, repo).await, TrainMsg::Get, 5_000).unwrap();
        if snap.last.as_ref().is_some_and(|d| d.number >= number) && snap.run.is_none() {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("train {number} of {repo} did not finish");
}

fn subjects(repo: &Path, range: &str) -> Vec<String> {
    git(repo, &["log", "--format=%s", range])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn branches(repo: &Path) -> String {
    git(repo, &["branch", "--format=%(refname:short)"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_merges_the_good_branch_and_sends_the_others_back_to_rebase() {
    let rig = PipelineRig::start_with(&["app"], team(), &[], |root| {
        with_remote_and_test_log(root, "app")
    })
    .await;
    let app = rig.repo_path("app");
    for (id, title) in [(1, "Add greet"), (2, "Add notes"), (3, "Add shout")] {
        rig.create(None, title).await.unwrap();
        assert_eq!(rig.finished(id).await.status, Status::Done);
    }
    let main_before = git(&app, &["rev-parse", "main"]);

    let first = release(&rig, "app").await;
    let digest = first.last.clone().unwrap();
    assert_eq!(digest.merged, [(1, "Add greet".to_owned())]);
    let reasons: Vec<_> = digest
        .excluded
        .iter()
        .map(|(id, _, r)| (*id, r.clone()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].1.contains("conflicts with main in notes.txt"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("fails after merging"), "{reasons:?}");
    // main holds exactly the good branch, as one merge commit on top of where it was.
    let main = git(&app, &["rev-parse", "main"]);
    assert_eq!(digest.main, main);
    assert_eq!(
        subjects(&app, &format!("{main_before}..main"))
            .first()
            .unwrap(),
        "Merge task #1: Add greet"
    );
    assert_eq!(git(&app, &["rev-parse", "main^1"]), main_before);
    assert_eq!(
        std::fs::read_to_string(app.join("greet.sh")).unwrap(),
        "echo hello\n",
        "the main checkout follows main"
    );
    // Tested after the merge, in the candidate's worktree, at the merge commit.
    let log = std::fs::read_to_string(rig.root.path().join("tests-app.log")).unwrap();
    assert!(
        log.contains(&format!(
            "{main} {}",
            app.join(".worktrees").join(CANDIDATE).display()
        )),
        "{log}"
    );
    // Pushed.
    let bare = rig.root.path().join("app.git");
    assert_eq!(git(&bare, &["rev-parse", "main"]), main);
    // The merged task is merged and its branch and worktree are gone; the candidate too.
    let one = rig.task(1).await;
    assert_eq!(
        (one.status, one.merged.as_deref()),
        (Status::Merged, Some(main.as_str()))
    );
    assert!(
        !branches(&app).contains("borg/task-1"),
        "{}",
        branches(&app)
    );
    assert!(!branches(&app).contains(CANDIDATE));
    assert!(!app.join(".worktrees/task-1").exists());
    // The other two went back to rebase, and come back done.
    for id in [2, 3] {
        let task = rig.finished(id).await;
        assert_eq!(task.status, Status::Done, "{task:?}");
        assert!(
            task.history.iter().any(|t| t.to == Status::Rebase),
            "{task:?}"
        );
        assert_eq!(task.rebases, 1);
    }
    let shout = rig.task(3).await;
    assert_eq!(
        shout.impl_attempts, 2,
        "the broken merge cost task 3 an attempt"
    );

    let second = release(&rig, "app").await;
    let digest = second.last.unwrap();
    assert_eq!(digest.merged.len(), 2, "{digest:?}");
    assert!(digest.excluded.is_empty(), "{digest:?}");
    let main = git(&app, &["rev-parse", "main"]);
    assert_eq!(
        std::fs::read_to_string(app.join("notes.txt")).unwrap(),
        "A\nB\n"
    );
    let status = std::process::Command::new("sh")
        .arg("test.sh")
        .current_dir(&app)
        .status()
        .unwrap();
    assert!(status.success(), "main passes its tests");
    assert_eq!(git(&bare, &["rev-parse", "main"]), main);
    for id in [1, 2, 3] {
        assert_eq!(rig.task(id).await.status, Status::Merged);
    }
    // Every task merged exactly once.
    let merges = subjects(&app, "main");
    for id in [1, 2, 3] {
        let n = merges
            .iter()
            .filter(|s| s.starts_with(&format!("Merge task #{id}:")))
            .count();
        assert_eq!(n, 1, "{merges:?}");
    }
    assert_eq!(branches(&app).trim(), "main");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_releases_each_task_and_trains_of_two_repos_overlap() {
    let slow = |root: &Path, name: &str| {
        let repo = root.join(name);
        let test_sh = std::fs::read_to_string(repo.join("test.sh")).unwrap();
        // Slow only in the candidate, so the two trains' test runs overlap.
        std::fs::write(
            repo.join("test.sh"),
            format!("case \"$(pwd)\" in *{CANDIDATE}) sleep 2;; esac\n{test_sh}"),
        )
        .unwrap();
        git(&repo, &["commit", "-qam", "slow candidate tests"]);
    };
    let rig = PipelineRig::start_with(
        &["app", "lib"],
        team(),
        &[("CONTINUOUS_MODE", "true")],
        |root| {
            slow(root, "app");
            slow(root, "lib");
        },
    )
    .await;
    rig.create(Some("app"), "Add greet").await.unwrap();
    rig.create(Some("lib"), "Add greet").await.unwrap();
    for id in [1, 2] {
        let task = rig.reaches(id, |s| s == Status::Merged).await;
        assert!(task.merged.is_some());
    }
    // A task hears it is merged before its train writes its digest: wait for both.
    let a = finished_train(&rig, "app", 1).await;
    let b = finished_train(&rig, "lib", 1).await;
    let (a, b) = (a.last.unwrap(), b.last.unwrap());
    assert!(
        a.started_ms < b.finished_ms && b.started_ms < a.finished_ms,
        "the trains ran one after the other: {a:?} {b:?}"
    );
    rig.stop().await;
}

/// A crash at each step of a train (frozen at a failpoint, then the whole pipeline tree
/// stopped where it is and started again on the same store, as a restarted daemon does):
/// `main` ends consistent, every task in the right state, nothing merged twice, no branch
/// lost and the candidate cleaned up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_train_leaves_main_whole_and_nothing_merged_twice() {
    for point in [
        "train:candidate",
        "train:merged",
        "train:tested",
        "train:landed",
    ] {
        let mut rig = PipelineRig::start_with(&["app"], team(), &[], |root| {
            with_remote_and_test_log(root, "app")
        })
        .await;
        let app = rig.repo_path("app");
        for (id, title) in [(1, "Add greet"), (2, "Add notes")] {
            rig.create(None, title).await.unwrap();
            assert_eq!(rig.finished(id).await.status, Status::Done);
        }
        let main_before = git(&app, &["rev-parse", "main"]);
        actors::failpoint::arm(Some(point));
        let started = ractor::call_t!(
            train(&rig, "app").await,
            |reply| TrainMsg::Start(Some(reply)),
            5_000
        )
        .unwrap();
        assert_eq!(started, Ok(1));
        for _ in 0..300 {
            if actors::failpoint::reached() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(actors::failpoint::reached(), "{point} was reached");
        actors::failpoint::arm(None);
        // main is either as it was or fully advanced, even now.
        let main = git(&app, &["rev-parse", "main"]);
        if main != main_before {
            assert_eq!(point, "train:landed");
            assert_eq!(git(&app, &["rev-parse", "main^1"]), main_before);
        }
        rig.restart().await;
        let snap = finished_train(&rig, "app", 1).await;
        let digest = snap.last.unwrap();
        assert_eq!(digest.merged, [(1, "Add greet".to_owned())], "{point}");
        assert_eq!(digest.excluded.len(), 1, "{point}: {digest:?}");
        let main = git(&app, &["rev-parse", "main"]);
        let merges = subjects(&app, &format!("{main_before}..main"));
        assert_eq!(
            merges
                .iter()
                .filter(|s| s.starts_with("Merge task"))
                .count(),
            1,
            "{point}: {merges:?}"
        );
        assert_eq!(git(&app, &["rev-parse", "main^1"]), main_before, "{point}");
        let bare = rig.root.path().join("app.git");
        assert_eq!(git(&bare, &["rev-parse", "main"]), main, "{point}");
        assert_eq!(rig.task(1).await.status, Status::Merged, "{point}");
        // Task 2's branch is not lost: it went back to rebase and is done again.
        let two = rig.finished(2).await;
        assert_eq!(
            (two.status, two.rebases),
            (Status::Done, 1),
            "{point}: {two:?}"
        );
        assert!(branches(&app).contains("borg/task-2"));
        assert!(!branches(&app).contains(CANDIDATE), "{point}");
        assert!(!app.join(".worktrees").join(CANDIDATE).exists(), "{point}");
        rig.stop().await;
    }
}
