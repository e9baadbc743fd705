//! The seeder: one per repository (`borg:repo:<name>:seeder`, child `seeder` of the
//! repository's supervisor), proposing small tasks while the repository has nothing to do.
//!
//! On a timer it asks the repository actor for its tasks. When every one of them is finished
//! and the cooldown since the last run is over, it runs a read-only agent in a scratch
//! worktree detached at `main`, in the next [`Mode`] of the rotation, and turns each proposal
//! of its answer ([`format::parse`], strict) into a backlog task through the desk, unless it
//! is similar to a task the repository has or had, or to one the seeder created recently.
//! The repository keeps at most [`MAX_OPEN`] unfinished tasks after a run.
//!
//! State (key `pipeline/seed/<repo>`, format 1): when the last run started, the next mode,
//! the titles created recently and the last run's error. The clock starts at the first start,
//! so a fresh daemon seeds one cooldown after it starts, never at once; and the start of a run
//! is saved before the agent runs, so a crash mid-run waits out the cooldown again.

pub mod format;
mod json;
mod run;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Persister, Snapshot, SnapshotStore, now_ms};
use supervisors::{ActorStats, BreakerPolicy, ChildSpec, StartCtx, StartError};

use crate::abort::AbortOnDrop;
use crate::agent::AgentRunner;
use crate::pipeline::ports::Vcs;
use crate::pipeline::repo::{RepoMsg, TaskSummary, repo_actor_name};
use crate::pipeline::task::PipelineSettings;
use crate::slots::SlotsMsg;
pub use format::Mode;
pub use run::RunReport;

/// At most this many unfinished tasks in a repository after a seeding run.
pub const MAX_OPEN: usize = 5;
/// How many titles of its own tasks the seeder remembers.
pub const RECENT_LIMIT: usize = 50;
/// The seeder's child id under its repository's supervisor.
pub const CHILD_ID: &str = "seeder";

/// The registered name of a repository's seeder.
pub fn seeder_name(repo: &str) -> String {
    format!("borg:repo:{repo}:seeder")
}

pub fn store_key(repo: &str) -> String {
    format!("pipeline/seed/{repo}")
}

/// When the seeder runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSettings {
    /// The least time between two runs, and between the first start and the first run.
    pub cooldown: Duration,
    /// How often the seeder looks whether a run is due.
    pub check_every: Duration,
}

impl SeedSettings {
    /// Checks four times per cooldown, at least every 30 s.
    pub fn new(cooldown: Duration) -> Self {
        let check_every = (cooldown / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        Self {
            cooldown,
            check_every,
        }
    }

    /// One hour per repository; one minute when the pipeline runs continuously.
    pub fn for_mode(continuous: bool) -> Self {
        Self::new(Duration::from_secs(if continuous { 60 } else { 3600 }))
    }
}

/// The seeder's durable state (format 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedSnapshot {
    /// When the last run started (or the seeder first started): the cooldown counts from here.
    pub last_run_ms: u64,
    /// Index into [`Mode::ALL`] of the next run's mode.
    pub next_mode: u32,
    /// Titles of the tasks the seeder created, oldest first (at most [`RECENT_LIMIT`]).
    pub recent_titles: Vec<String>,
    /// Why the last run created nothing it was asked for (a malformed answer, a failed agent).
    pub last_error: Option<String>,
    /// Runs finished.
    pub runs: u64,
    /// Tasks created, over all runs.
    pub created: u64,
}

impl Snapshot for SeedSnapshot {
    const VERSION: u16 = 1;
}

pub enum SeedMsg {
    /// Time to look whether a run is due (the seeder's own timer).
    Tick,
    #[doc(hidden)]
    RunDone(Box<RunReport>),
    Get(RpcReplyPort<SeedSnapshot>),
}

/// What a seeder works with.
#[derive(Clone)]
pub struct SeedDeps {
    pub repo: String,
    pub vcs: Arc<dyn Vcs>,
    /// The model, timeouts and sessions directory the agent runs with.
    pub pipeline: Arc<PipelineSettings>,
    pub runner: Arc<dyn AgentRunner>,
    pub slots: ActorRef<SlotsMsg>,
    pub store: Arc<dyn SnapshotStore>,
}

pub struct SeedArgs {
    pub deps: SeedDeps,
    pub settings: SeedSettings,
    pub stats: Option<Arc<ActorStats>>,
}

/// The seeder's child spec (id `seeder`, registered as [`seeder_name`]). `deps` gathers what
/// it needs on every (re)start.
pub fn child_spec<F, Fut>(repo: &str, settings: SeedSettings, deps: F) -> ChildSpec
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SeedDeps, StartError>> + Send + 'static,
{
    let (name, deps) = (seeder_name(repo), Arc::new(deps));
    ChildSpec::new(CHILD_ID, move |ctx: StartCtx| {
        let (name, settings, deps) = (name.clone(), settings.clone(), deps.clone());
        async move {
            let args = SeedArgs {
                deps: deps().await?,
                settings,
                stats: Some(ctx.stats.clone()),
            };
            ctx.spawn_named(Some(name), Seeder, args).await.map(Some)
        }
    })
    .kind("seeder")
    // A seeder that keeps failing parks instead of taking its repository's tasks down.
    .breaker(BreakerPolicy::default())
}

pub struct Seeder;

pub struct SeedState {
    deps: Arc<SeedDeps>,
    settings: SeedSettings,
    persister: Persister<SeedSnapshot>,
    snap: SeedSnapshot,
    /// The run under way; ticks are ignored while there is one.
    run: Option<AbortOnDrop>,
    /// Sends [`SeedMsg::Tick`]; stops with the state.
    ticker: Option<AbortOnDrop>,
}

impl Actor for Seeder {
    type Msg = SeedMsg;
    type State = SeedState;
    type Arguments = SeedArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SeedMsg>,
        args: SeedArgs,
    ) -> Result<SeedState, ActorProcessingErr> {
        let key = store_key(&args.deps.repo);
        let (persister, restored) =
            Persister::restore(args.deps.store.clone(), key, args.stats).await?;
        let fresh = restored.is_none();
        let snap = restored.unwrap_or_else(|| SeedSnapshot {
            last_run_ms: now_ms(),
            ..SeedSnapshot::default()
        });
        if fresh {
            persister.save(&snap).await?;
        }
        Ok(SeedState {
            deps: Arc::new(args.deps),
            settings: args.settings,
            persister,
            snap,
            run: None,
            ticker: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SeedMsg>,
        state: &mut SeedState,
    ) -> Result<(), ActorProcessingErr> {
        let every = state.settings.check_every;
        state.ticker = Some(AbortOnDrop(myself.send_interval(every, || SeedMsg::Tick)));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SeedMsg>,
        msg: SeedMsg,
        state: &mut SeedState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SeedMsg::Tick => state.tick(&myself).await?,
            SeedMsg::RunDone(report) => state.finish(*report).await?,
            SeedMsg::Get(reply) => {
                let _ = reply.send(state.snap.clone());
            }
        }
        Ok(())
    }
}

const ASK_TIMEOUT_MS: u64 = 5_000;

/// The repository's tasks; `None` when its actor is not running or does not answer.
async fn tasks_of(repo: &str) -> Option<Vec<TaskSummary>> {
    let actor: ActorRef<RepoMsg> = ractor::registry::where_is(repo_actor_name(repo))?.into();
    ractor::call_t!(actor, RepoMsg::List, ASK_TIMEOUT_MS).ok()
}

impl SeedState {
    /// Starts a run when one is due: no run under way, the cooldown over, the repository idle.
    async fn tick(&mut self, myself: &ActorRef<SeedMsg>) -> Result<(), ActorProcessingErr> {
        let due = self.snap.last_run_ms + self.settings.cooldown.as_millis() as u64;
        if self.run.is_some() || now_ms() < due {
            return Ok(());
        }
        let Some(tasks) = tasks_of(&self.deps.repo).await else {
            return Ok(());
        };
        if tasks.iter().any(|t| !t.status.is_terminal()) {
            return Ok(());
        }
        let mode = Mode::nth(self.snap.next_mode as usize);
        self.snap.last_run_ms = now_ms();
        self.snap.next_mode = (self.snap.next_mode + 1) % Mode::ALL.len() as u32;
        // Before the run: a crash during it waits out the cooldown instead of seeding again.
        self.persister.save(&self.snap).await?;
        tracing::info!(repo = %self.deps.repo, %mode, "the repository is idle; seeding");
        let (deps, me) = (self.deps.clone(), myself.clone());
        let recent = self.snap.recent_titles.clone();
        self.run = Some(AbortOnDrop::spawn(async move {
            // In a task of its own, so a panic becomes a report rather than a lost run.
            let inner = AbortOnDrop::spawn_with(run::run(deps, mode, tasks, recent));
            let report = inner.join().await.unwrap_or_else(|e| {
                RunReport::failed(mode, format!("the seeding run failed unexpectedly: {e}"))
            });
            let _ = me.cast(SeedMsg::RunDone(Box::new(report)));
        }));
        Ok(())
    }

    async fn finish(&mut self, report: RunReport) -> Result<(), ActorProcessingErr> {
        self.run = None;
        let (repo, mode) = (&self.deps.repo, report.mode);
        match &report.error {
            Some(why) => tracing::warn!(%repo, %mode, created = report.created.len(),
                "seeding: {why}"),
            None => tracing::info!(%repo, %mode, created = report.created.len(),
                similar = report.similar, over_cap = report.over_cap, "seeding run finished"),
        }
        let snap = &mut self.snap;
        snap.recent_titles.extend(report.created.iter().cloned());
        let excess = snap.recent_titles.len().saturating_sub(RECENT_LIMIT);
        snap.recent_titles.drain(..excess);
        snap.created += report.created.len() as u64;
        snap.runs += 1;
        snap.last_error = report.error;
        self.persister.save(&self.snap).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supervisors::snapshot::{decode, encode};

    #[test]
    fn the_snapshot_round_trips() {
        let snap = SeedSnapshot {
            last_run_ms: 7,
            next_mode: 2,
            recent_titles: vec!["Fix the slot leak".into()],
            last_error: Some("malformed answer".into()),
            runs: 3,
            created: 4,
        };
        assert_eq!(decode::<SeedSnapshot>(&encode(&snap)).unwrap(), snap);
    }

    #[test]
    fn checks_four_times_per_cooldown_at_least_every_30_s() {
        assert_eq!(
            SeedSettings::for_mode(false).cooldown,
            Duration::from_secs(3600)
        );
        assert_eq!(
            SeedSettings::for_mode(false).check_every,
            Duration::from_secs(30)
        );
        assert_eq!(
            SeedSettings::for_mode(true).check_every,
            Duration::from_secs(15)
        );
        assert_eq!(
            SeedSettings::new(Duration::from_millis(400)).check_every,
            Duration::from_millis(100)
        );
    }
}
