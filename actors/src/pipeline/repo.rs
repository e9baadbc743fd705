//! The repository actor: one per repository (`borg:repo:<name>`). It keeps the repository's
//! task list (key `pipeline/repo/<name>`) and starts the task actors under the repository's
//! `tasks` supervisor: new ones when asked, and on every start the unfinished ones, so a
//! restarted daemon (or a restarted `tasks` supervisor, which restarts this actor after it)
//! carries on with every task that was under way.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Persister, Snapshot};
use supervisors::{ActorStats, BreakerPolicy, ChildSpec, StartCtx, SupervisorError, SupervisorRef};

use crate::pipeline::phase::Status;
pub use crate::pipeline::task::state::TaskSummary;
use crate::pipeline::task::state::{NewTask, TaskSnapshot};
use crate::pipeline::task::{Reporter, Task, TaskArgs, TaskDeps, TaskMsg};

/// One task in the repository's list: how to start it again, and where it was last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoEntry {
    pub new: NewTask,
    pub summary: TaskSummary,
}

/// The repository's durable task list (format 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoSnapshot {
    pub tasks: BTreeMap<u64, RepoEntry>,
}

impl Snapshot for RepoSnapshot {
    const VERSION: u16 = 1;
}

/// The registered name of a repository's actor.
pub fn repo_actor_name(repo: &str) -> String {
    format!("borg:repo:{repo}")
}

/// The registered name of a repository's `tasks` supervisor.
pub fn tasks_supervisor_name(repo: &str) -> String {
    format!("borg:repo:{repo}:tasks")
}

pub fn store_key(repo: &str) -> String {
    format!("pipeline/repo/{repo}")
}

pub enum RepoMsg {
    /// Records a new task (durably) and starts its actor.
    Create {
        id: u64,
        new: NewTask,
        reply: RpcReplyPort<Result<TaskSummary, String>>,
    },
    /// A task moved (sent by the task actor).
    TaskChanged(TaskSummary),
    List(RpcReplyPort<Vec<TaskSummary>>),
    /// The task's actor, when it runs.
    Task(u64, RpcReplyPort<Option<ActorRef<TaskMsg>>>),
}

pub struct RepoArgs {
    pub deps: TaskDeps,
    pub tasks: SupervisorRef,
    pub stats: Option<Arc<ActorStats>>,
    /// Called when a task reaches `done` (the release train listens).
    pub on_done: Option<Arc<dyn Fn() + Send + Sync>>,
}

pub struct Repo;

pub struct RepoState {
    deps: TaskDeps,
    on_done: Option<Arc<dyn Fn() + Send + Sync>>,
    tasks: SupervisorRef,
    persister: Persister<RepoSnapshot>,
    snap: RepoSnapshot,
}

impl Actor for Repo {
    type Msg = RepoMsg;
    type State = RepoState;
    type Arguments = RepoArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RepoMsg>,
        args: RepoArgs,
    ) -> Result<RepoState, ActorProcessingErr> {
        let key = store_key(&args.deps.repo.name);
        let (persister, restored) =
            Persister::restore(args.deps.store.clone(), key, args.stats).await?;
        Ok(RepoState {
            deps: args.deps,
            on_done: args.on_done,
            tasks: args.tasks,
            persister,
            snap: restored.unwrap_or_default(),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<RepoMsg>,
        state: &mut RepoState,
    ) -> Result<(), ActorProcessingErr> {
        let unfinished: Vec<(u64, NewTask)> = state
            .snap
            .tasks
            .iter()
            .filter(|(_, e)| !e.summary.status.is_terminal())
            .map(|(id, e)| (*id, e.new.clone()))
            .collect();
        if !unfinished.is_empty() {
            tracing::info!(repo = %state.deps.repo.name, count = unfinished.len(),
                "resuming unfinished tasks");
        }
        for (id, new) in unfinished {
            state.start_task(id, new).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RepoMsg>,
        msg: RepoMsg,
        state: &mut RepoState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RepoMsg::Create { id, new, reply } => {
                let result = state.create(id, new).await;
                let _ = reply.send(result);
            }
            RepoMsg::TaskChanged(summary) => {
                if let Some(entry) = state.snap.tasks.get_mut(&summary.id)
                    && entry.summary != summary
                {
                    let finished =
                        summary.status == Status::Done && entry.summary.status != Status::Done;
                    entry.summary = summary;
                    state.persister.save(&state.snap).await?;
                    if finished && let Some(on_done) = &state.on_done {
                        on_done();
                    }
                }
            }
            RepoMsg::List(reply) => {
                let list = state.snap.tasks.values().map(|e| e.summary.clone());
                let _ = reply.send(list.collect());
            }
            RepoMsg::Task(id, reply) => {
                let task = match state.tasks.child(&task_child_id(id)).await {
                    Ok(Some(cell)) => Some(cell.into()),
                    _ => None,
                };
                let _ = reply.send(task);
            }
        }
        Ok(())
    }
}

/// How a task tells its repository where it is: through the repository actor's registered
/// name, so a task keeps reporting to the repository's actor after that actor restarts.
fn reporter(repo: &str) -> Reporter {
    let name = repo_actor_name(repo);
    Arc::new(move |summary: TaskSummary| {
        if let Some(repo) = ractor::registry::where_is(name.clone()) {
            let repo: ActorRef<RepoMsg> = repo.into();
            let _ = repo.cast(RepoMsg::TaskChanged(summary));
        }
    })
}

/// The child id of a task under its repository's `tasks` supervisor.
pub fn task_child_id(id: u64) -> String {
    format!("task:{id}")
}

impl RepoState {
    async fn create(&mut self, id: u64, new: NewTask) -> Result<TaskSummary, String> {
        if let Some(entry) = self.snap.tasks.get(&id) {
            // The desk asking again for a request that came twice: the task it already is.
            if entry.new == new {
                return Ok(entry.summary.clone());
            }
            return Err(format!("task #{id} exists already"));
        }
        let summary = TaskSummary::of(&TaskSnapshot::new(
            id,
            new.clone(),
            supervisors::snapshot::now_ms(),
        ));
        self.snap.tasks.insert(
            id,
            RepoEntry {
                new: new.clone(),
                summary: summary.clone(),
            },
        );
        // Durable before the actor starts: a crash now still finds the task on restart.
        if let Err(e) = self.persister.save(&self.snap).await {
            self.snap.tasks.remove(&id);
            return Err(format!("could not record the task: {e}"));
        }
        self.start_task(id, new).await;
        Ok(summary)
    }

    async fn start_task(&self, id: u64, new: NewTask) {
        let mut deps = self.deps.clone();
        deps.report = Some(reporter(&self.deps.repo.name));
        let spec = ChildSpec::new(task_child_id(id), move |ctx: StartCtx| {
            let args = TaskArgs {
                id,
                new: new.clone(),
                deps: deps.clone(),
                stats: Some(ctx.stats.clone()),
            };
            async move { ctx.spawn(Task, args).await.map(Some) }
        })
        .kind("task")
        .breaker(BreakerPolicy::default());
        match self.tasks.start_child(spec).await {
            // Still running from before this actor restarted.
            Ok(_) | Err(SupervisorError::AlreadyPresent(_)) => {}
            Err(e) => {
                tracing::error!(repo = %self.deps.repo.name, task = id, "task did not start: {e}")
            }
        }
    }
}
