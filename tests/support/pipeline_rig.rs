//! A pipeline in the test process: the real pipeline subtree (desk, repositories, tasks),
//! real git repositories, a real redb store and the real process test runner. The agent is
//! [`ScriptedAgent`], a stand-in for the model and the CLI (their real pairing is tested in
//! tests/docker_agent.rs and tests/pipeline_e2e.rs): per phase it writes files the way an agent
//! would, and it records every request so tests can check prompts and sessions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::agent::{AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use actors::pipeline::desk::{DESK_NAME, DeskMsg};
use actors::pipeline::phase::Status;
use actors::pipeline::task::PipelineSettings;
use actors::pipeline::task::state::TaskSnapshot;
use actors::pipeline::task::state::TaskSummary;
use actors::slots::AgentSlots;
use borg::config::Config;
use borg::pipeline::{PipelineWiring, pipeline_spec};
use borg::sandbox::ProcessTestRunner;
use ractor::{Actor, ActorRef};
use supervisors::{Introspection, SupervisorRef};

/// Registered names are process-wide: pipeline rigs take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the scripted agent does in one run: writes `(path, content)` files (relative to the
/// worktree) and answers `say`.
#[derive(Debug, Clone, Default)]
pub struct Act {
    pub files: Vec<(String, String)>,
    pub say: String,
    /// Sleep this long first (to observe concurrency).
    pub work: Duration,
    /// Commit the files itself (`git commit` in the worktree), as an agent with Bash may.
    pub commit: bool,
    /// End the run with this error instead of success.
    pub error: Option<actors::agent::AgentError>,
    /// Panic instead of answering (a bug in a runner).
    pub panic: bool,
}

impl Act {
    /// Writes one file and says "done".
    pub fn write(path: &str, content: &str) -> Act {
        Act {
            files: vec![(path.into(), content.into())],
            say: "done".into(),
            ..Act::default()
        }
    }
}

/// The spec file a spec prompt names (its `Spec file:` line).
pub fn spec_file(request: &AgentRequest) -> String {
    request
        .prompt
        .lines()
        .find_map(|l| l.strip_prefix("Spec file: "))
        .expect("a spec prompt names its spec file")
        .to_owned()
}

type Script = dyn Fn(&str, u32, &AgentRequest) -> Act + Send + Sync;

/// Plays an [`Act`] chosen by the phase (`Phase: <name>` in the prompt) and attempt.
pub struct ScriptedAgent {
    script: Box<Script>,
    pub requests: Mutex<Vec<AgentRequest>>,
    /// (owner, phase, start, end) of every run, to check what overlapped.
    pub spans: Mutex<Vec<(String, String, std::time::Instant, std::time::Instant)>>,
}

impl ScriptedAgent {
    pub fn new(
        script: impl Fn(&str, u32, &AgentRequest) -> Act + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            spans: Mutex::new(Vec::new()),
        })
    }

    /// The act this agent's script chooses, without running it (to wrap one script in
    /// another).
    pub fn play(&self, phase: &str, attempt: u32, request: &AgentRequest) -> Act {
        (self.script)(phase, attempt, request)
    }

    pub fn prompts(&self, phase: &str) -> Vec<String> {
        let marker = format!("Phase: {phase}\n");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.prompt.starts_with(&marker))
            .map(|r| r.prompt.clone())
            .collect()
    }
}

fn field<'a>(prompt: &'a str, name: &str) -> Option<&'a str> {
    prompt
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

impl AgentRunner for ScriptedAgent {
    fn run(
        &self,
        request: AgentRequest,
        _progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>> {
        Box::pin(async move {
            let start = std::time::Instant::now();
            let phase = field(&request.prompt, "Phase:").unwrap_or("?").to_owned();
            let attempt = field(&request.prompt, "Attempt:")
                .and_then(|a| a.parse().ok())
                .unwrap_or(1);
            self.requests.lock().unwrap().push(request.clone());
            let act = (self.script)(&phase, attempt, &request);
            tokio::time::sleep(act.work).await;
            assert!(!act.panic, "the scripted agent panics, as asked");
            for (path, content) in &act.files {
                let path = request.workdir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, content).unwrap();
            }
            if act.commit {
                git(&request.workdir, &["add", "-A"]);
                git(
                    &request.workdir,
                    &["commit", "-q", "-m", "agent's own commit"],
                );
            }
            self.spans.lock().unwrap().push((
                request.owner.clone(),
                phase.clone(),
                start,
                std::time::Instant::now(),
            ));
            AgentOutcome {
                session_id: Some(format!("session-{}", request.owner)),
                text: act.say,
                cost_usd: Some(0.01),
                num_turns: Some(1),
                error: act.error,
            }
        })
    }
}

/// Runs a git command in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A small POSIX-sh project whose test command (`sh test.sh`) runs every `tests/*.sh`.
pub fn sample_repo(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("test.sh"),
        "#!/bin/sh\n# Runs every test; fails if any fails.\nstatus=0\n\
         for t in tests/*.sh; do\n  [ -e \"$t\" ] || continue\n  \
         if sh \"$t\"; then echo \"ok $t\"; else echo \"FAIL $t\"; status=1; fi\n\
         done\nexit $status\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "# sample\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "initial"]);
    dir
}

/// A running pipeline; shut down with [`PipelineRig::stop`].
pub struct PipelineRig {
    pub root: tempfile::TempDir,
    pub tree: SupervisorRef,
    pub slots: ActorRef<actors::slots::SlotsMsg>,
    pub agent: Arc<ScriptedAgent>,
    pub store: borg::store::Store,
    wiring: PipelineWiring,
    settings: PipelineSettings,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl PipelineRig {
    /// Starts the pipeline over repositories `names` (created as sample repos).
    pub async fn start(names: &[&str], agent: Arc<ScriptedAgent>) -> Self {
        Self::start_with(names, agent, &[], |_| {}).await
    }

    /// [`PipelineRig::start`] with more configuration variables (`extra`), and `prepare`
    /// run on the root folder after the sample repositories are made and before the pipeline
    /// starts (to add a remote, say).
    pub async fn start_with(
        names: &[&str],
        agent: Arc<ScriptedAgent>,
        extra: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        Self::start_full(
            names,
            agent,
            extra,
            prepare,
            Arc::new(ProcessTestRunner),
            None,
        )
        .await
    }

    /// [`PipelineRig::start_with`] with the test runner given (to time test runs, say) and
    /// the pipeline's sandbox gate.
    pub async fn start_full(
        names: &[&str],
        agent: Arc<ScriptedAgent>,
        extra: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
        tests: Arc<dyn actors::pipeline::ports::TestRunner>,
        gate: Option<Arc<actors::pipeline::gate::SandboxGate>>,
    ) -> Self {
        let turn = TURN.lock().await;
        let root = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![(
            "DATA_DIR".into(),
            root.path().join("data").display().to_string(),
        )];
        let repos: Vec<PathBuf> = names.iter().map(|n| sample_repo(root.path(), n)).collect();
        env.push(("PIPELINE_REPO".into(), repos[0].display().to_string()));
        env.push(("PIPELINE_TEST_CMD".into(), "sh test.sh".into()));
        if repos.len() > 1 {
            let watched: Vec<String> = repos[1..]
                .iter()
                .map(|p| format!("{}:sh test.sh", p.display()))
                .collect();
            env.push(("WATCHED_REPOS".into(), watched.join("|")));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        prepare(root.path());
        let config =
            Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
                .expect("config");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let store = borg::store::Store::open(&config.data_dir).expect("store");
        let (slots, _) = Actor::spawn(Some(borg::chat::SLOTS_NAME.into()), AgentSlots, 4)
            .await
            .expect("slots");
        let settings = PipelineSettings {
            retry_backoff: Duration::from_millis(10),
            stall_retry: Duration::from_millis(200),
            ..borg::pipeline::settings(&config)
        };
        let wiring = PipelineWiring {
            config: Arc::new(config),
            store: Arc::new(store.clone()),
            runner: agent.clone(),
            tests,
            on_primary_release: None,
            gate,
        };
        let tree = spawn(&wiring, &settings).await;
        Self {
            root,
            tree,
            slots,
            agent,
            store,
            wiring,
            settings,
            _turn: turn,
        }
    }

    /// Stops the whole pipeline tree where it is (whatever runs is aborted) and starts it
    /// again on the same store, as a restarted daemon would.
    pub async fn restart(&mut self) {
        self.tree.shutdown().await;
        self.tree = spawn(&self.wiring, &self.settings).await;
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn desk(&self) -> ActorRef<DeskMsg> {
        ractor::registry::where_is(DESK_NAME)
            .expect("desk runs")
            .into()
    }

    pub async fn create(&self, repo: Option<&str>, title: &str) -> Result<TaskSummary, String> {
        self.create_requested(repo, title, None).await
    }

    /// [`create`](Self::create) with a request key, as a chat's `/task` has.
    pub async fn create_requested(
        &self,
        repo: Option<&str>,
        title: &str,
        request: Option<&str>,
    ) -> Result<TaskSummary, String> {
        ractor::call_t!(
            self.desk(),
            |reply| DeskMsg::Create {
                repo: repo.map(str::to_owned),
                title: title.into(),
                description: String::new(),
                origin: None,
                request: request.map(str::to_owned),
                requested_by: "test".into(),
                reply,
            },
            5_000
        )
        .expect("desk answers")
    }

    /// Every task the desk knows.
    pub async fn list(&self) -> Vec<TaskSummary> {
        ractor::call_t!(self.desk(), DeskMsg::List, 5_000).expect("desk answers")
    }

    pub async fn task(&self, id: u64) -> TaskSnapshot {
        ractor::call_t!(self.desk(), DeskMsg::Get, 5_000, id)
            .expect("desk answers")
            .expect("task exists")
    }

    /// Waits until task `id` is at rest: terminal, or done and queued for release (at most
    /// 60 s).
    pub async fn finished(&self, id: u64) -> TaskSnapshot {
        self.reaches(id, |s| s.is_at_rest()).await
    }

    /// Waits until task `id`'s status passes `check` (at most 60 s).
    pub async fn reaches(&self, id: u64, check: impl Fn(Status) -> bool) -> TaskSnapshot {
        for _ in 0..600 {
            let task = self.task(id).await;
            if check(task.status) {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("task {id} did not finish: {:?}", self.task(id).await);
    }

    pub async fn stop(self) {
        self.tree.shutdown().await;
        self.slots.stop(None);
        self.store.close().await;
    }
}

async fn spawn(wiring: &PipelineWiring, settings: &PipelineSettings) -> SupervisorRef {
    let spec = pipeline_spec(wiring.clone(), settings.clone());
    SupervisorRef::spawn_root("pipeline", spec, Introspection::new())
        .await
        .expect("pipeline tree")
        .0
}

/// The status path a task took.
pub fn path(task: &TaskSnapshot) -> Vec<Status> {
    let mut out = vec![];
    for t in &task.history {
        if out.is_empty() {
            out.push(t.from);
        }
        out.push(t.to);
    }
    out
}

impl PipelineRig {
    /// (Re)starts repository `repo`'s seeder with `settings` (a short cooldown, say) in place
    /// of the configured one, under the repository's supervisor as the wiring does; it keeps
    /// the configured seeder's snapshot, if one ran.
    pub async fn seeder(&self, repo: &str, settings: actors::pipeline::seed::SeedSettings) {
        use actors::pipeline::seed::{self, SeedDeps};
        let supervisor = self
            .tree
            .child(&format!("repo:{repo}"))
            .await
            .expect("the pipeline supervisor answers")
            .expect("the repository's supervisor runs");
        let supervisor = SupervisorRef::new(supervisor.into());
        // Not there when AUTO_SEED is off.
        let _ = supervisor.terminate_child(seed::CHILD_ID).await;
        let _ = supervisor.delete_child(seed::CHILD_ID).await;
        let vcs = borg::git::GitRepo::open(repo, self.repo_path(repo)).expect("the repo opens");
        let deps = SeedDeps {
            repo: repo.to_owned(),
            vcs: Arc::new(vcs),
            pipeline: Arc::new(self.settings.clone()),
            runner: self.agent.clone(),
            slots: self.slots.clone(),
            store: Arc::new(self.store.clone()),
        };
        let spec = seed::child_spec(repo, settings, move || std::future::ready(Ok(deps.clone())));
        supervisor
            .start_child(spec)
            .await
            .expect("the seeder starts");
    }
}
