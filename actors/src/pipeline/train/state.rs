//! A release train's durable state: [`TrainSnapshot`] (key `pipeline/train/<repo>`, format 1),
//! saved after every step of a train, so a train resumed after a crash knows exactly which
//! branches it has decided, what the candidate holds and whether `main` has moved.

use serde::{Deserialize, Serialize};
use supervisors::snapshot::Snapshot;

/// The branch every train builds on `main` before `main` moves.
pub const CANDIDATE: &str = "release-candidate";

/// One repository's trains.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainSnapshot {
    /// The train under way, if any.
    pub run: Option<TrainRun>,
    /// When the last train started (the interval counts from here).
    pub last_started_ms: u64,
    /// Trains run so far.
    pub trains: u64,
    /// What the last finished train did.
    pub last: Option<Digest>,
}

impl Snapshot for TrainSnapshot {
    const VERSION: u16 = 1;
}

/// A train under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRun {
    /// Its number (1, 2, ...), for logs and the digest.
    pub number: u64,
    pub started_ms: u64,
    /// `main` when the train started: the candidate starts here, and `main` only ever moves
    /// from here to the finished candidate, in one step.
    pub main_before: String,
    /// The candidate's head: `main_before` plus every merge kept so far.
    pub candidate: String,
    /// The queued branches, in the order their tasks finished.
    pub entries: Vec<Entry>,
    pub stage: Stage,
    /// How the push went (`Some` once tried): the remote, or why it failed.
    pub pushed: Option<Result<Option<String>, String>>,
}

/// One queued branch and what the train decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub task: u64,
    pub title: String,
    pub branch: String,
    pub outcome: Option<Outcome>,
}

/// What became of a queued branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Merged into the candidate by this merge commit, and the tests passed on it.
    Merged { commit: String },
    /// Left out, and why (a conflict, failing tests).
    Excluded { reason: String },
}

/// Where a train is. Each stage's work is idempotent given the saved run, so a train resumed
/// at any stage after a crash finishes the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Merging the entries one by one into the candidate, testing after each.
    Merging,
    /// Every entry is decided and at least one merged: `main` moves to the candidate.
    Landing,
    /// `main` holds the candidate: pushing it to the remote.
    Pushing,
    /// Telling the tasks, deleting merged branches and the candidate, sending the digest.
    Reporting,
}

/// A finished train, as the admin chat, `status` and the dashboard see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub number: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// `main` after the train (unchanged when nothing merged).
    pub main: String,
    /// `(task, title)` of every merged branch.
    pub merged: Vec<(u64, String)>,
    /// `(task, title, reason)` of every excluded branch.
    pub excluded: Vec<(u64, String, String)>,
    pub pushed: Option<Result<Option<String>, String>>,
}

impl Digest {
    /// The digest as chat text.
    pub fn text(&self, repo: &str) -> String {
        let mut out = format!("Release #{} of {repo}", self.number);
        if self.merged.is_empty() {
            out.push_str(": nothing merged, main unchanged.");
        } else {
            out.push_str(&format!(": main is now {}.", short(&self.main)));
        }
        for (task, title) in &self.merged {
            out.push_str(&format!("\n✓ merged #{task} {title}"));
        }
        for (task, title, reason) in &self.excluded {
            out.push_str(&format!(
                "\n✗ excluded #{task} {title}: {reason} (back to rebase)"
            ));
        }
        match &self.pushed {
            Some(Ok(Some(remote))) => out.push_str(&format!("\nPushed main to {remote}.")),
            Some(Ok(None)) | None => {}
            Some(Err(e)) => out.push_str(&format!("\nThe push failed: {e}")),
        }
        out
    }
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisors::snapshot::{decode, encode};

    #[test]
    fn round_trips_a_train_under_way() {
        let snap = TrainSnapshot {
            run: Some(TrainRun {
                number: 2,
                started_ms: 5,
                main_before: "aaa".into(),
                candidate: "bbb".into(),
                entries: vec![Entry {
                    task: 3,
                    title: "t".into(),
                    branch: "borg/task-3".into(),
                    outcome: Some(Outcome::Excluded {
                        reason: "conflict".into(),
                    }),
                }],
                stage: Stage::Landing,
                pushed: Some(Err("offline".into())),
            }),
            last_started_ms: 5,
            trains: 1,
            last: None,
        };
        assert_eq!(decode::<TrainSnapshot>(&encode(&snap)).unwrap(), snap);
    }

    #[test]
    fn the_digest_names_merged_and_excluded_branches_with_reasons() {
        let digest = Digest {
            number: 4,
            started_ms: 0,
            finished_ms: 0,
            main: "0123456789abcdef".into(),
            merged: vec![(1, "Add greet".into())],
            excluded: vec![(2, "Break it".into(), "the tests fail".into())],
            pushed: Some(Ok(Some("origin".into()))),
        };
        let text = digest.text("app");
        assert!(text.starts_with("Release #4 of app: main is now 0123456789."));
        assert!(text.contains("merged #1 Add greet"));
        assert!(text.contains("excluded #2 Break it: the tests fail"));
        assert!(text.contains("Pushed main to origin."));
    }
}
