//! The pipeline subtree, wired from the configuration:
//!
//! ```text
//! pipeline (one_for_one)
//! ├── desk                 task ids, creation and lists (borg:pipeline)
//! └── repo:<name>          rest_for_one, one per repository (PIPELINE_REPO, WATCHED_REPOS)
//!     ├── tasks            dynamic supervisor (borg:repo:<name>:tasks): task:<id>
//!     └── repo             the repository's task list (borg:repo:<name>)
//! ```
//!
//! one_for_one at the top: repositories are independent, and the desk only routes. Inside a
//! repository rest_for_one: if `tasks` restarts (all its task actors with it), `repo` restarts
//! after it and starts every unfinished task again from its list.
//!
//! A repository's name is its `WATCHED_REPOS` slug, else its directory name; it is the
//! repository's identity in chats, on the CLI and in the store.

pub mod release;
mod seeding;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actors::agent::{AgentError, AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use actors::chat::ChatId;
use actors::chat::router::RouterMsg;
use actors::pipeline::desk::{DESK_NAME, Desk, DeskArgs};
use actors::pipeline::gate::SandboxGate;
use actors::pipeline::ports::{Announcer, TestOutcome, TestRequest, TestRunError, TestRunner, Vcs};
use actors::pipeline::repo::{Repo, RepoArgs, repo_actor_name, tasks_supervisor_name};
use actors::pipeline::task::{PipelineSettings, RepoDeps, TaskDeps};
use actors::pipeline::train::ReleaseHook;
use actors::slots::SlotsMsg;
use ractor::ActorRef;
use supervisors::snapshot::SnapshotStore;
use supervisors::{
    BreakerPolicy, ChildSpec, Intensity, StartCtx, StartError, Strategy, SupervisorRef,
    SupervisorSpec,
};

use crate::claude::ClaudeConfig;
use crate::config::{Config, SandboxKind};
use crate::docker::DockerConfig;
use crate::git::GitRepo;
use crate::sandbox::{Runners, Sandbox};
use crate::wiring::{ROUTER_NAME, SLOTS_NAME};

/// One repository the pipeline works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub name: String,
    pub path: std::path::PathBuf,
    pub test_cmd: String,
    /// Whether a release train merges its finished work (`!manual` in `WATCHED_REPOS`: no).
    pub auto_merge: bool,
    /// `PIPELINE_REPO` (the one self-update watches).
    pub primary: bool,
}

/// The repositories of the configuration, the primary (`PIPELINE_REPO`) first. Two
/// repositories with the same name is a configuration error.
pub fn repos(config: &Config) -> Result<Vec<RepoConfig>, String> {
    let mut out: Vec<RepoConfig> = Vec::new();
    if let Some(path) = &config.pipeline_repo {
        out.push(RepoConfig {
            name: dir_name(path),
            path: path.clone(),
            test_cmd: config.pipeline_test_cmd.clone(),
            auto_merge: true,
            primary: true,
        });
    }
    for watched in &config.watched_repos {
        out.push(RepoConfig {
            name: watched
                .slug
                .clone()
                .unwrap_or_else(|| dir_name(&watched.path)),
            path: watched.path.clone(),
            test_cmd: config.test_cmd_for(watched).to_owned(),
            auto_merge: watched.auto_merge,
            primary: false,
        });
    }
    for (i, repo) in out.iter().enumerate() {
        if out[..i].iter().any(|r| r.name == repo.name) {
            return Err(format!(
                "two repositories are named {:?} ({} and another); give one a slug in \
                 WATCHED_REPOS",
                repo.name,
                repo.path.display()
            ));
        }
    }
    Ok(out)
}

fn dir_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into())
}

/// The agent and test runners of the configured sandbox (`AGENT_SANDBOX`), with a line for
/// logs and `/status`. When Docker is asked for but unreachable, borg does NOT fall back to
/// running agents unsandboxed: the runners refuse every run with the reason, so tasks wait
/// (no attempt is counted) until the engine is back and the daemon restarted.
pub async fn runners(config: &Config) -> (Runners, String) {
    // Every agent process of this instance carries its id, so the next start can find what
    // a killed daemon left running (containers carry a label for the same purpose).
    let instance = crate::claude::process::instance_id(&config.data_dir);
    if config.agent_sandbox == SandboxKind::Process {
        let killed = crate::claude::process::kill_instance_leftovers(&instance);
        if killed > 0 {
            tracing::warn!("killed {killed} agent process(es) left by an earlier run");
        }
    }
    let claude = ClaudeConfig {
        bin: config.claude_bin.clone(),
        extra_env: vec![(crate::claude::process::INSTANCE_VAR.into(), instance)],
        ..ClaudeConfig::default()
    };
    let sandbox = match config.agent_sandbox {
        SandboxKind::Process => Sandbox::Process,
        SandboxKind::Docker => {
            let mut roots = vec![config.data_dir.clone()];
            roots.extend(
                repos(config)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.path),
            );
            let mut docker = DockerConfig::new(roots);
            docker.image = config.agent_image.clone();
            docker.network = config.agent_network.clone();
            Sandbox::Docker(docker)
        }
    };
    let description = sandbox.describe();
    match sandbox.start(claude).await {
        Ok(runners) => {
            let runners = runners.clearing_orphans();
            if sandbox == Sandbox::Process {
                tracing::warn!(
                    "AGENT_SANDBOX=process: agents and tests run on the host, unisolated"
                );
            }
            (runners, description)
        }
        Err(e) => {
            let why = format!("agents cannot run: AGENT_SANDBOX=docker but {e}");
            tracing::error!("{why}");
            let refuse = Arc::new(Refuse(why.clone()));
            let runners = Runners {
                agent: refuse.clone(),
                test: refuse,
                docker: None,
                docker_config: None,
            };
            (runners, format!("unavailable: {why}"))
        }
    }
}

/// Runners that refuse every run, with the reason (the sandbox is unreachable).
struct Refuse(String);

impl AgentRunner for Refuse {
    fn run(
        &self,
        _request: AgentRequest,
        _progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>> {
        let outcome = AgentOutcome {
            session_id: None,
            text: String::new(),
            cost_usd: None,
            num_turns: None,
            error: Some(AgentError::Spawn(self.0.clone())),
        };
        Box::pin(std::future::ready(outcome))
    }
}

impl TestRunner for Refuse {
    fn run(
        &self,
        _request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>> {
        Box::pin(std::future::ready(Err(TestRunError(self.0.clone()))))
    }
}

/// What the pipeline subtree is built from.
#[derive(Clone)]
pub struct PipelineWiring {
    pub config: Arc<Config>,
    pub store: Arc<dyn SnapshotStore>,
    pub runner: Arc<dyn AgentRunner>,
    pub tests: Arc<dyn TestRunner>,
    /// Told the new `main` of `PIPELINE_REPO` after each release (self-update).
    pub on_primary_release: Option<ReleaseHook>,
    /// The breaker on the sandbox every task passes ([`sandbox_gate`]).
    pub gate: Option<Arc<SandboxGate>>,
}

/// The pipeline's breaker on its sandbox, for sandboxes that can go away under a running
/// daemon (a Docker engine); it tells `PIPELINE_ADMIN_CHAT` when it opens and closes.
pub fn sandbox_gate(config: &Config, runners: &Runners) -> Option<Arc<SandboxGate>> {
    let probe = runners.probe()?;
    let admin = config
        .pipeline_admin_chat
        .clone()
        .map(|chat| (Arc::new(RouterAnnouncer) as Arc<dyn Announcer>, chat));
    Some(SandboxGate::new(probe, admin))
}

/// Settings every task shares, from the configuration.
pub fn settings(config: &Config) -> PipelineSettings {
    PipelineSettings {
        model: config.claude_model.clone(),
        idle_timeout: Duration::from_secs(config.agent_idle_timeout_s),
        hard_timeout: Duration::from_secs(config.agent_timeout_s),
        test_timeout: Duration::from_secs(config.test_timeout_s),
        max_turns: None,
        sessions_dir: config.data_dir.join("sessions"),
        retry_backoff: Duration::from_secs(10),
        stall_retry: Duration::from_secs(30),
        admin_chat: config.pipeline_admin_chat.clone(),
    }
}

/// The pipeline supervisor's spec. With no repository configured it has only the desk,
/// which answers that no repository is configured.
pub fn pipeline_spec(w: PipelineWiring, settings: PipelineSettings) -> SupervisorSpec {
    let repos = match repos(&w.config) {
        Ok(repos) => repos,
        Err(e) => {
            tracing::error!("the pipeline has no repositories: {e}");
            Vec::new()
        }
    };
    let settings = Arc::new(settings);
    let names: Vec<String> = repos.iter().map(|r| r.name.clone()).collect();
    let store = w.store.clone();
    let mut children = vec![
        ChildSpec::new("desk", move |ctx: StartCtx| {
            let args = DeskArgs {
                repos: names.clone(),
                store: store.clone(),
                stats: Some(ctx.stats.clone()),
            };
            async move {
                ctx.spawn_named(Some(DESK_NAME.into()), Desk, args)
                    .await
                    .map(Some)
            }
        })
        .kind("desk"),
    ];
    for repo in repos {
        children.push(
            ChildSpec::supervisor(
                format!("repo:{}", repo.name),
                repo_spec(w.clone(), settings.clone(), repo),
            )
            .breaker(BreakerPolicy::default()),
        );
    }
    SupervisorSpec {
        strategy: Strategy::OneForOne,
        intensity: Intensity {
            max_restarts: 5,
            period: Duration::from_secs(10),
        },
        children,
    }
}

fn repo_spec(
    w: PipelineWiring,
    settings: Arc<PipelineSettings>,
    repo: RepoConfig,
) -> SupervisorSpec {
    let tasks_name = tasks_supervisor_name(&repo.name);
    let tasks_lookup = tasks_name.clone();
    let tasks = crate::wiring::dynamic_supervisor("tasks", tasks_name.clone());
    // Made once per repository and kept across restarts of its `repo` actor: tasks that are
    // still running hold these, and tasks started by the new actor must share them.
    let locks = RepoDeps::phase_locks();
    let vcs_cell: VcsCell = Arc::default();
    let seeder = seeding::seeder_child(&w, &settings, &repo, &vcs_cell);
    let hook = w.on_primary_release.clone().filter(|_| repo.primary);
    let train = release::train_child(&w, &settings, &repo, &vcs_cell, hook);
    let on_done = release::kick(&repo.name);
    let owner = ChildSpec::new("repo", move |ctx: StartCtx| {
        let (w, settings, repo, tasks_name, locks, vcs_cell, on_done) = (
            w.clone(),
            settings.clone(),
            repo.clone(),
            tasks_lookup.clone(),
            locks.clone(),
            vcs_cell.clone(),
            on_done.clone(),
        );
        async move {
            let vcs = open_vcs(&vcs_cell, &repo).await?;
            let slots = ractor::registry::where_is(SLOTS_NAME)
                .ok_or_else(|| StartError("agent slots are not running".into()))?;
            let tasks = ractor::registry::where_is(tasks_name)
                .ok_or_else(|| StartError("the tasks supervisor is not running".into()))?;
            let deps = TaskDeps {
                settings,
                repo: Arc::new(RepoDeps::new(
                    repo.name.clone(),
                    vcs,
                    repo.test_cmd.clone(),
                    locks,
                )),
                runner: w.runner.clone(),
                tests: w.tests.clone(),
                slots: ActorRef::<SlotsMsg>::from(slots),
                store: w.store.clone(),
                announcer: Some(Arc::new(RouterAnnouncer)),
                // Set per task by the repository actor.
                report: None,
                gate: w.gate.clone(),
            };
            let args = RepoArgs {
                deps,
                tasks: SupervisorRef::new(tasks.into()),
                stats: Some(ctx.stats.clone()),
                on_done: Some(on_done),
            };
            ctx.spawn_named(Some(repo_actor_name(&repo.name)), Repo, args)
                .await
                .map(Some)
        }
    })
    .kind("repo");
    SupervisorSpec {
        strategy: Strategy::RestForOne,
        intensity: Intensity {
            max_restarts: 5,
            period: Duration::from_secs(10),
        },
        children: [Some(tasks), Some(owner), train, seeder]
            .into_iter()
            .flatten()
            .collect(),
    }
}

/// A repository's git handle, opened by the first child that needs it and shared by the
/// others (and by their restarts).
pub(crate) type VcsCell = Arc<tokio::sync::OnceCell<Arc<dyn Vcs>>>;

/// The repository's git handle from `cell`, opening it the first time.
pub(crate) async fn open_vcs(
    cell: &VcsCell,
    repo: &RepoConfig,
) -> Result<Arc<dyn Vcs>, StartError> {
    let vcs = cell
        .get_or_try_init(|| async {
            // Off the async workers: opening a repository reads its files.
            let (name, path) = (repo.name.clone(), repo.path.clone());
            let opened = tokio::task::spawn_blocking(move || GitRepo::open(name, path))
                .await
                .map_err(|e| StartError(format!("opening the repository panicked: {e}")))?
                .map_err(|e| StartError(format!("repository {}: {e}", repo.name)))?;
            Ok::<Arc<dyn Vcs>, StartError>(Arc::new(opened))
        })
        .await?;
    Ok(vcs.clone())
}

/// Announces through the chat router, which knows every platform's transport.
pub(crate) struct RouterAnnouncer;

impl Announcer for RouterAnnouncer {
    fn announce(&self, chat: &str, text: String) {
        match ractor::registry::where_is(ROUTER_NAME) {
            Some(router) => {
                let router: ActorRef<RouterMsg> = router.into();
                let _ = router.cast(RouterMsg::Announce(ChatId(chat.to_owned()), text));
            }
            None => tracing::info!(chat, "no chat is connected; pipeline report: {text}"),
        }
    }
}
