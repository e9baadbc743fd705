//! Task worktrees made and removed through gix (`GitRepo::prepare` + `GitRepo::remove`, as
//! the pipeline does it) against the git CLI (`git worktree add -b`, `git worktree remove
//! --force`, `git branch -D`), on one repository of a few hundred files. Rounds interleave the
//! two (alternating which goes first) so machine noise hits both alike; prints the medians and
//! the ratio gix/CLI.
//!
//! Run: `cargo bench --bench worktrees` (needs the git CLI). `ROUNDS=50` for more rounds.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use actors::pipeline::ports::Vcs;
use borg::git::GitRepo;

/// Files in the benchmark repository, spread over folders like a small project.
const FILES: usize = 400;

fn main() {
    if Command::new("git").arg("--version").output().is_err() {
        if std::env::var("BORG_TEST_STRICT").as_deref() == Ok("1") {
            panic!("BORG_TEST_STRICT=1 and the git CLI is not installed");
        }
        eprintln!("SKIPPED: the git CLI is not installed");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let tmp = tempfile::tempdir().expect("temporary folder");
    let path = tmp.path().join("bench");
    std::fs::create_dir(&path).expect("repository folder");
    let bytes = make_repository(&path);
    let repo = GitRepo::open("bench", &path).expect("open the benchmark repository");

    // One of each first, untimed: page cache and lazily built git state.
    gix_round(&repo, 0);
    cli_round(repo.path(), 0);

    let mut gix = Timings::default();
    let mut cli = Timings::default();
    for round in 1..=rounds as u64 {
        if round % 2 == 0 {
            gix.push(gix_round(&repo, round));
            cli.push(cli_round(repo.path(), round));
        } else {
            cli.push(cli_round(repo.path(), round));
            gix.push(gix_round(&repo, round));
        }
    }

    println!(
        "worktrees: {FILES} files ({} KiB) per checkout, {rounds} interleaved rounds",
        bytes / 1024
    );
    println!("                    create      remove       total   (medians)");
    gix.print("gix (GitRepo)");
    cli.print("git CLI");
    let ratio = |a: &[Duration], b: &[Duration]| median(a).as_secs_f64() / median(b).as_secs_f64();
    println!(
        "ratio gix/CLI       {:>6.2}      {:>6.2}      {:>6.2}",
        ratio(&gix.create, &cli.create),
        ratio(&gix.remove, &cli.remove),
        ratio(&gix.total, &cli.total)
    );
}

/// Create and remove times of one round.
type Round = (Duration, Duration);

#[derive(Default)]
struct Timings {
    create: Vec<Duration>,
    remove: Vec<Duration>,
    total: Vec<Duration>,
}

impl Timings {
    fn push(&mut self, (create, remove): Round) {
        self.create.push(create);
        self.remove.push(remove);
        self.total.push(create + remove);
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<18} {:>8.2} ms {:>8.2} ms {:>8.2} ms",
            ms(median(&self.create)),
            ms(median(&self.remove)),
            ms(median(&self.total))
        );
    }
}

fn gix_round(repo: &GitRepo, round: u64) -> Round {
    let task = 1_000 + round;
    let started = Instant::now();
    let wt = repo.prepare(task).expect("prepare");
    let created = started.elapsed();
    assert!(wt.path.join("src/m0/f0.rs").exists(), "checked out");
    let started = Instant::now();
    repo.remove(task, true).expect("remove");
    (created, started.elapsed())
}

fn cli_round(repo: &Path, round: u64) -> Round {
    let branch = format!("borg/cli-{round}");
    let dir = format!(".worktrees/cli-{round}");
    let started = Instant::now();
    git(
        repo,
        &["worktree", "add", "--quiet", "-b", &branch, &dir, "main"],
    );
    let created = started.elapsed();
    assert!(repo.join(&dir).join("src/m0/f0.rs").exists(), "checked out");
    let started = Instant::now();
    git(repo, &["worktree", "remove", "--force", &dir]);
    git(repo, &["branch", "--quiet", "-D", &branch]);
    (created, started.elapsed())
}

/// A repository on `main` with [`FILES`] small source files; returns their total size.
fn make_repository(path: &Path) -> usize {
    git(path, &["init", "--quiet", "--initial-branch=main"]);
    let mut bytes = 0;
    for i in 0..FILES {
        let file = path.join(format!("src/m{}/f{}.rs", i % 20, i / 20));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("folder");
        let content = format!("// file {i}\n{}", "pub fn f() -> u32 { 42 }\n".repeat(40));
        bytes += content.len();
        std::fs::write(file, content).expect("write");
    }
    git(path, &["add", "--all"]);
    git(path, &["commit", "--quiet", "-m", "initial"]);
    bytes
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
