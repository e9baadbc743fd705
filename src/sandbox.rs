//! Which sandbox agents and test commands run in (`AGENT_SANDBOX`): Docker containers or
//! plain processes. [`Sandbox::start`] turns the choice into the two ports the daemon wires,
//! an `Arc<dyn AgentRunner>` and an `Arc<dyn TestRunner>` ([`Runners`]).
//!
//! - `Docker`: [`ContainerRunner`] and [`ContainerTestRunner`] (see [`crate::docker`]); the
//!   agent runs with `--dangerously-skip-permissions`, since the container is the fence.
//! - `Process`: the subprocess [`ClaudeRunner`] (permissions as configured) and
//!   [`ProcessTestRunner`]: for machines without an engine, with no isolation beyond a
//!   cleared environment, which the daemon says loudly.

use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use actors::agent::{AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use actors::pipeline::gate::SandboxProbe;
use actors::pipeline::ports::{TestOutcome, TestRequest, TestRunError, TestRunner};
use bollard::Docker;
use tokio::process::Command;
use tokio::sync::watch;

use crate::claude::env::RUN_MARKER_VAR;
use crate::claude::process::{OutputTail, RunProcesses};
use crate::claude::runner::STDERR_GRACE;
use crate::claude::{ClaudeConfig, ClaudeRunner};
use crate::docker::{ContainerRunner, ContainerTestRunner, DockerConfig, DockerError};

/// At most this much of a test command's output is kept (its end): 16 KB in either sense.
pub const TEST_OUTPUT_TAIL_BYTES: usize = 16_000;
/// What a test command gets of borg's environment, and nothing else.
pub const TEST_ENV_VARS: &[&str] = &["PATH", "HOME", "LANG"];

/// Where agents and test commands run.
#[derive(Debug, Clone, PartialEq)]
pub enum Sandbox {
    Docker(DockerConfig),
    Process,
}

/// The ports the daemon wires, for one sandbox.
#[derive(Clone)]
pub struct Runners {
    pub agent: Arc<dyn AgentRunner>,
    pub test: Arc<dyn TestRunner>,
    /// The engine connection; `None` for processes.
    pub docker: Option<Docker>,
    /// The container settings, for [`Runners::remove_orphans`]; `None` for processes.
    pub docker_config: Option<DockerConfig>,
}

impl Runners {
    /// Removes the containers this daemon left when it was killed (its `borg.instance`,
    /// [`crate::docker::remove_instance_orphans`]): call it at startup, before any run.
    /// Nothing to do for processes.
    pub async fn remove_orphans(&self) -> Result<usize, DockerError> {
        match (&self.docker, &self.docker_config) {
            (Some(docker), Some(config)) => {
                crate::docker::remove_instance_orphans(docker, config).await
            }
            _ => Ok(0),
        }
    }
}

impl Runners {
    /// Removes, in the background, the containers this daemon left when it was killed, and
    /// makes every run wait until that is done (an orphaned agent must not go on editing a
    /// worktree beside its successor). Nothing else waits: after a `kill -9` the chat and
    /// the control socket answer at once, while the engine tears the old containers down.
    pub fn clearing_orphans(self) -> Runners {
        if self.docker.is_none() {
            return self;
        }
        let (cleared, done) = watch::channel(false);
        let cleaner = self.clone();
        tokio::spawn(async move {
            match cleaner.remove_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("removed {n} agent container(s) left by an earlier run"),
                Err(e) => tracing::warn!("could not look for left-over containers: {e}"),
            }
            let _ = cleared.send(true);
        });
        Runners {
            agent: Arc::new(AfterCleanup {
                inner: self.agent,
                done: done.clone(),
            }),
            test: Arc::new(AfterCleanup {
                inner: self.test,
                done,
            }),
            ..self
        }
    }
}

/// A runner whose runs start once the orphans are cleared ([`Runners::clearing_orphans`]).
struct AfterCleanup<R: ?Sized> {
    inner: Arc<R>,
    done: watch::Receiver<bool>,
}

impl<R: ?Sized> AfterCleanup<R> {
    async fn cleared(&self) {
        // An error means the cleaner is gone (it panicked): nothing left to wait for.
        let _ = self.done.clone().wait_for(|done| *done).await;
    }
}

impl AgentRunner for AfterCleanup<dyn AgentRunner> {
    fn run(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>> {
        Box::pin(async move {
            self.cleared().await;
            self.inner.run(request, progress).await
        })
    }
}

impl TestRunner for AfterCleanup<dyn TestRunner> {
    fn run(
        &self,
        request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>> {
        Box::pin(async move {
            self.cleared().await;
            self.inner.run(request).await
        })
    }
}

impl Runners {
    /// What the pipeline's sandbox gate probes while it is open: the engine answers and
    /// has the agent image. `None` for processes, which have no engine to wait for.
    pub fn probe(&self) -> Option<Arc<dyn SandboxProbe>> {
        let docker = self.docker.clone()?;
        let image = self.docker_config.as_ref()?.image.clone();
        Some(Arc::new(DockerProbe { docker, image }))
    }
}

/// See [`Runners::probe`].
struct DockerProbe {
    docker: Docker,
    image: String,
}

impl SandboxProbe for DockerProbe {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.docker
                .ping()
                .await
                .map_err(|e| format!("the Docker engine does not answer: {e}"))?;
            self.docker
                .inspect_image(&self.image)
                .await
                .map_err(|e| format!("the agent image {} is not there: {e}", self.image))?;
            // Containers of runs the outage cut short, which could not be removed then.
            crate::docker::remove_unremoved(&self.docker).await;
            Ok(())
        })
    }
}

impl Sandbox {
    /// Connects to the engine (for `Docker`) and makes the runners. `claude` configures the
    /// agent's flags and environment in both sandboxes.
    pub async fn start(&self, claude: ClaudeConfig) -> Result<Runners, DockerError> {
        match self {
            Self::Docker(config) => {
                let docker = crate::docker::connect().await?;
                let claude = ClaudeConfig {
                    dangerously_skip_permissions: true,
                    ..claude
                };
                Ok(Runners {
                    agent: Arc::new(ContainerRunner::new(docker.clone(), config.clone(), claude)),
                    test: Arc::new(ContainerTestRunner::new(docker.clone(), config.clone())),
                    docker: Some(docker),
                    docker_config: Some(config.clone()),
                })
            }
            Self::Process => Ok(Runners {
                agent: Arc::new(ClaudeRunner::new(claude)),
                test: Arc::new(ProcessTestRunner),
                docker: None,
                docker_config: None,
            }),
        }
    }

    /// One line for logs and `/status`.
    pub fn describe(&self) -> String {
        match self {
            Self::Docker(c) => format!("docker (image {}, network {})", c.image, c.network),
            Self::Process => {
                "process (no isolation: agents and tests run as borg's own user)".into()
            }
        }
    }
}

/// Runs test commands as plain processes: `sh -c <command>` in the worktree, in a process
/// group of its own, with a cleared environment plus [`TEST_ENV_VARS`] (and the run marker
/// by which [`RunProcesses`] finds processes that left the group). stdout and stderr are
/// interleaved into one tail of [`TEST_OUTPUT_TAIL_BYTES`]. At the timeout, and when the
/// command ends, everything it started is killed; dropping the future kills it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessTestRunner;

impl ProcessTestRunner {
    async fn run_process(&self, request: TestRequest) -> Result<TestOutcome, TestRunError> {
        let workdir = &request.workdir;
        let cannot = |why: String| {
            TestRunError(format!(
                "cannot run the tests of {} in {}: {why}",
                request.owner,
                workdir.display()
            ))
        };
        if !workdir.is_dir() {
            return Err(cannot("the directory does not exist".into()));
        }
        let marker = RunProcesses::new_marker();
        let mut child = command(&request.command, workdir, &marker)
            .spawn()
            .map_err(|e| cannot(format!("sh: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| cannot("sh exited at once".into()))?;
        let processes = RunProcesses::new(pid, &marker);
        let tail = OutputTail::new(TEST_OUTPUT_TAIL_BYTES);
        let readers = [
            child.stdout.take().map(|s| tail.follow(s)),
            child.stderr.take().map(|s| tail.follow(s)),
        ];
        let ended = tokio::time::timeout(request.timeout, child.wait()).await;
        // Whatever the command left behind goes too, on every path.
        processes.kill_and_settle().await;
        let (exit_code, timed_out) = match ended {
            Ok(Ok(status)) => (status.code(), false),
            Ok(Err(err)) => return Err(cannot(format!("waiting for sh failed: {err}"))),
            Err(_) => {
                let _ = child.wait().await;
                tracing::warn!(owner = %request.owner, timeout = ?request.timeout,
                    "a test command ran past its timeout and was stopped");
                (None, true)
            }
        };
        for reader in readers.into_iter().flatten() {
            let mut reader = reader;
            if tokio::time::timeout(STDERR_GRACE, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
        Ok(TestOutcome {
            passed: exit_code == Some(0),
            exit_code,
            timed_out,
            output_tail: tail.text(),
        })
    }
}

fn command(script: &str, workdir: &Path, marker: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(workdir)
        .env_clear()
        .envs(
            TEST_ENV_VARS
                .iter()
                .filter_map(|name| Some((name, std::env::var_os(name)?))),
        )
        .env(RUN_MARKER_VAR, marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

impl TestRunner for ProcessTestRunner {
    fn run(
        &self,
        request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>> {
        Box::pin(self.run_process(request))
    }
}
