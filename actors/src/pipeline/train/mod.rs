//! The release train: one actor per repository (`borg:repo:<name>:train`) that brings
//! finished work to `main`.
//!
//! A train starts every `RELEASE_INTERVAL_MINS`, or after each task that reaches `done` in
//! `CONTINUOUS_MODE`, or when asked (`borg release`). It takes the repository's `done` tasks
//! in the order they finished, builds branch `release-candidate` from `main` by merging each
//! one (`--no-ff`) and running the test command after each merge, keeping the merges that
//! pass. A branch that conflicts or breaks the tests is excluded and its task goes back to
//! rebase. When at least one branch merged, `main` moves to the candidate in one step, is
//! pushed when the repository has a remote, the merged branches and worktrees are deleted
//! and a digest goes to the admin chat. See [`step`] for why a crash at any point leaves
//! `main` either as it was or fully advanced.
//!
//! The steps run beside the mailbox, as a task's do, so the actor answers while tests run.
//! Trains of different repositories are different actors and run independently.

pub mod state;
pub mod step;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisors::ActorStats;
use supervisors::snapshot::{Persister, SnapshotStore, now_ms};

use crate::abort::AbortOnDrop;
use crate::pipeline::phase::Status;
use crate::pipeline::ports::{Announcer, TestRunner};
use crate::pipeline::repo::{RepoMsg, repo_actor_name};
use crate::pipeline::task::RepoDeps;
use state::{Entry, Stage, TrainRun, TrainSnapshot};
use step::StepResult;

/// The registered name of a repository's train.
pub fn train_actor_name(repo: &str) -> String {
    format!("borg:repo:{repo}:train")
}

pub fn store_key(repo: &str) -> String {
    format!("pipeline/train/{repo}")
}

/// Starts repository `repo`'s release train now (the primary repository's when `None`), as
/// `/release`, `borg release` and the dashboard ask: the train's number, or why none starts.
pub async fn release_now(repo: Option<String>) -> Result<(String, u64), String> {
    const WAIT_MS: u64 = 5_000;
    let desk = crate::pipeline::desk::desk().ok_or(NO_PIPELINE)?;
    let repos = ractor::call_t!(desk, crate::pipeline::desk::DeskMsg::Repos, WAIT_MS)
        .map_err(|e| format!("the pipeline did not answer: {e}"))?;
    let repo = repo.or_else(|| repos.first().cloned()).ok_or(NO_PIPELINE)?;
    if !repos.contains(&repo) {
        return Err(format!(
            "no repository is named {repo}; there are: {}",
            repos.join(", ")
        ));
    }
    let train: ActorRef<TrainMsg> = ractor::registry::where_is(train_actor_name(&repo))
        .ok_or_else(|| format!("{repo} has no release train (its changes are merged by hand)"))?
        .into();
    match ractor::call_t!(train, |r| TrainMsg::Start(Some(r)), WAIT_MS) {
        Ok(Ok(n)) => Ok((repo, n)),
        Ok(Err(why)) => Err(format!("no release of {repo} now: {why}")),
        Err(e) => Err(format!("the release train of {repo} did not answer: {e}")),
    }
}

const NO_PIPELINE: &str =
    "the pipeline is not running (set PIPELINE_REPO to a git repository to start it)";

/// When trains run.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// `RELEASE_INTERVAL_MINS`: at most one scheduled train per interval.
    pub interval: Duration,
    /// `CONTINUOUS_MODE`: a train after each task that reaches `done`.
    pub continuous: bool,
    pub test_timeout: Duration,
    /// Where digests go.
    pub admin_chat: Option<String>,
    /// How often the interval is checked.
    pub check_every: Duration,
    /// Wait before a stalled step runs again (doubling, capped at 5 minutes), and before a
    /// train given up is tried again.
    pub stall_retry: Duration,
}

/// Told the new `main` after every train that moved it (self-update listens here).
pub type ReleaseHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What a train talks to.
#[derive(Clone)]
pub struct TrainDeps {
    pub repo: Arc<RepoDeps>,
    pub tests: Arc<dyn TestRunner>,
    pub store: Arc<dyn SnapshotStore>,
    pub announcer: Option<Arc<dyn Announcer>>,
    pub settings: Arc<TrainSettings>,
    pub on_release: Option<ReleaseHook>,
}

pub struct TrainArgs {
    pub deps: TrainDeps,
    pub stats: Option<Arc<ActorStats>>,
}

pub enum TrainMsg {
    /// The interval timer.
    Tick,
    /// A task reached `done` (sent by the repository actor).
    Kick,
    /// Start a train now if none is under way and something is queued; the reply says which
    /// train runs, or why none does.
    Start(Option<RpcReplyPort<Result<u64, String>>>),
    /// The saved state: the train under way and the last digest.
    Get(RpcReplyPort<TrainSnapshot>),
    #[doc(hidden)]
    Continue(u64),
    #[doc(hidden)]
    StepDone(u64, Box<StepResult>),
}

pub struct Train;

pub struct TrainState {
    deps: Arc<TrainDeps>,
    persister: Persister<TrainSnapshot>,
    snap: TrainSnapshot,
    generation: u64,
    step: Option<AbortOnDrop>,
    stalls: u32,
    /// A task finished while a train ran: look at the queue again when it ends.
    again: bool,
}

impl Actor for Train {
    type Msg = TrainMsg;
    type State = TrainState;
    type Arguments = TrainArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TrainMsg>,
        args: TrainArgs,
    ) -> Result<TrainState, ActorProcessingErr> {
        let key = store_key(&args.deps.repo.name);
        let (persister, restored) =
            Persister::restore(args.deps.store.clone(), key, args.stats).await?;
        // The interval counts from the first start: a new install does not release at once.
        let snap = restored.unwrap_or_else(|| TrainSnapshot {
            last_started_ms: now_ms(),
            ..TrainSnapshot::default()
        });
        Ok(TrainState {
            deps: Arc::new(args.deps),
            persister,
            snap,
            generation: 0,
            step: None,
            stalls: 0,
            again: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TrainMsg>,
        state: &mut TrainState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(state.deps.settings.check_every, || TrainMsg::Tick);
        if let Some(run) = &state.snap.run {
            tracing::info!(repo = %state.deps.repo.name, train = run.number, stage = ?run.stage,
                "resuming the release train");
            state.go(&myself);
        } else if state.deps.settings.continuous {
            let _ = myself.cast(TrainMsg::Start(None));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TrainMsg>,
        msg: TrainMsg,
        state: &mut TrainState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrainMsg::Tick => {
                let due =
                    state.snap.last_started_ms + state.deps.settings.interval.as_millis() as u64;
                if state.snap.run.is_none() && now_ms() >= due {
                    let _ = state.start(&myself).await?;
                }
            }
            TrainMsg::Kick if state.deps.settings.continuous => {
                if state.snap.run.is_some() {
                    state.again = true;
                } else {
                    let _ = state.start(&myself).await?;
                }
            }
            TrainMsg::Kick => {}
            TrainMsg::Start(reply) => {
                let result = state.start(&myself).await?;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            TrainMsg::Get(reply) => {
                let _ = reply.send(state.snap.clone());
            }
            TrainMsg::Continue(generation) if generation == state.generation => state.go(&myself),
            TrainMsg::StepDone(generation, result) if generation == state.generation => {
                state.step = None;
                state.step_done(&myself, *result).await?;
            }
            // A step or timer of a train that has moved on.
            TrainMsg::Continue(_) | TrainMsg::StepDone(..) => {}
        }
        Ok(())
    }
}

impl TrainState {
    /// Starts a train over the queued branches, unless one is under way or none is queued.
    async fn start(
        &mut self,
        myself: &ActorRef<TrainMsg>,
    ) -> Result<Result<u64, String>, ActorProcessingErr> {
        if let Some(run) = &self.snap.run {
            return Ok(Err(format!("release train #{} is under way", run.number)));
        }
        let entries = match self.queue().await {
            Ok(entries) if entries.is_empty() => return Ok(Err("nothing is queued".into())),
            Ok(entries) => entries,
            Err(why) => return Ok(Err(why)),
        };
        let vcs = self.deps.repo.vcs.clone();
        let main = match tokio::task::spawn_blocking(move || vcs.main_head()).await {
            Ok(Ok(main)) => main,
            Ok(Err(e)) => return Ok(Err(format!("could not read main: {e}"))),
            Err(e) => return Ok(Err(format!("reading main panicked: {e}"))),
        };
        let number = self.snap.trains + 1;
        self.snap.trains = number;
        self.snap.last_started_ms = now_ms();
        self.snap.run = Some(TrainRun {
            number,
            started_ms: now_ms(),
            main_before: main.clone(),
            candidate: main,
            entries,
            stage: Stage::Merging,
            pushed: None,
        });
        self.again = false;
        // Durable before any git work: a crash from here on resumes this train.
        self.persister.save(&self.snap).await?;
        tracing::info!(repo = %self.deps.repo.name, train = number,
            queued = self.snap.run.as_ref().map_or(0, |r| r.entries.len()), "release train starts");
        self.go(myself);
        Ok(Ok(number))
    }

    /// The `done` tasks, in the order they finished.
    async fn queue(&self) -> Result<Vec<Entry>, String> {
        let name = repo_actor_name(&self.deps.repo.name);
        let repo: ActorRef<RepoMsg> = ractor::registry::where_is(name)
            .ok_or("the repository actor is not running")?
            .into();
        let mut done: Vec<_> = ractor::call_t!(repo, RepoMsg::List, 5_000)
            .map_err(|e| format!("the repository actor did not answer: {e}"))?
            .into_iter()
            .filter(|t| t.status == Status::Done)
            .collect();
        done.sort_by_key(|t| (t.updated_ms, t.id));
        Ok(done
            .into_iter()
            .filter_map(|t| {
                Some(Entry {
                    task: t.id,
                    title: t.title,
                    branch: t.branch?,
                    outcome: None,
                })
            })
            .collect())
    }

    /// Runs the next step of the train under way, as a new generation.
    fn go(&mut self, myself: &ActorRef<TrainMsg>) {
        self.generation += 1;
        let Some(run) = self.snap.run.clone() else {
            return;
        };
        let (deps, me, generation) = (self.deps.clone(), myself.clone(), self.generation);
        self.step = Some(AbortOnDrop::spawn(async move {
            let inner = AbortOnDrop::spawn_with(step::run(deps, run));
            let result = inner.join().await.unwrap_or_else(|e| {
                StepResult::Stalled(format!("the train step failed unexpectedly: {e}"))
            });
            let _ = me.cast(TrainMsg::StepDone(generation, Box::new(result)));
        }));
    }

    async fn step_done(
        &mut self,
        myself: &ActorRef<TrainMsg>,
        result: StepResult,
    ) -> Result<(), ActorProcessingErr> {
        let repo = self.deps.repo.name.clone();
        match result {
            StepResult::Next(run) => {
                self.stalls = 0;
                self.snap.run = Some(run);
                self.persister.save(&self.snap).await?;
                self.go(myself);
            }
            StepResult::Stalled(why) => {
                let wait = (self.deps.settings.stall_retry * 2u32.pow(self.stalls.min(8)))
                    .min(Duration::from_secs(300));
                self.stalls += 1;
                tracing::warn!(
                    repo,
                    "release train stalled, trying again in {wait:?}: {why}"
                );
                let generation = self.generation;
                myself.send_after(wait, move || TrainMsg::Continue(generation));
            }
            StepResult::Abandoned(why) => {
                let number = self.snap.run.take().map_or(0, |r| r.number);
                self.persister.save(&self.snap).await?;
                tracing::warn!(repo, train = number, "release train given up: {why}");
                self.announce(format!(
                    "Release #{number} of {repo} was given up: {why}. main is unchanged; the \
                     branches stay queued for the next train."
                ));
                let retry = self.deps.settings.stall_retry;
                myself.send_after(retry, || TrainMsg::Start(None));
            }
            StepResult::Finished(digest) => {
                self.stalls = 0;
                self.snap.run = None;
                self.snap.last = Some(digest.clone());
                self.persister.save(&self.snap).await?;
                self.announce(digest.text(&repo));
                if !digest.merged.is_empty()
                    && let Some(hook) = &self.deps.on_release
                {
                    hook(&digest.main);
                }
                if std::mem::take(&mut self.again) {
                    let _ = myself.cast(TrainMsg::Start(None));
                }
            }
        }
        Ok(())
    }

    fn announce(&self, text: String) {
        if let (Some(announcer), Some(chat)) =
            (&self.deps.announcer, &self.deps.settings.admin_chat)
        {
            announcer.announce(chat, text);
        }
    }
}
