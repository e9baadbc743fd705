//! [`ContainerRunner`]: the `AgentRunner` port with the real `claude` CLI inside a hardened
//! container of the agent image.
//!
//! A run: create the home and workdir, check both mounts ([`super::MountPolicy`]), write the
//! prompt file into the home, hand the mounts to the container's user (when borg is root),
//! create, attach and start the container, and watch its stdout with the same code and
//! timeouts as the process runner ([`crate::claude::watch`]). The CLI gets the same flags
//! ([`crate::claude::claude_args`]) and the same environment allow-list
//! ([`crate::claude::env::container_env`]), with `HOME=/home/agent`. However the run ends,
//! the container is force-removed (killed first if it still runs) and the mounts are given
//! back: awaited on every normal path, spawned from `Drop` when the future is dropped.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use actors::agent::{AgentError, AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use bollard::Docker;
use tokio::io::BufReader;

use super::DockerConfig;
use super::container::{
    AGENT_HOME, AbortOnDrop, Cleanup, ContainerSpec, WORKSPACE, demux, engine_lost, launch,
    new_run_id,
};
use super::mounts::MountPolicy;
use super::ownership::RunAs;
use crate::claude::env::container_env;
use crate::claude::process::{LineReader, MAX_LINE_BYTES, OutputTail, STDERR_TAIL_BYTES};
use crate::claude::runner::STDERR_GRACE;
use crate::claude::watch::watch;
use crate::claude::{ClaudeConfig, StreamAccumulator, claude_args};

/// The CLI's name inside the image (on the image's `PATH`).
const CLAUDE_IN_IMAGE: &str = "claude";
/// The prompt file's name in the home, before the run id.
const PROMPT_FILE_PREFIX: &str = ".borg-prompt-";

/// Runs Claude Code in a container.
#[derive(Clone)]
pub struct ContainerRunner {
    docker: Docker,
    config: DockerConfig,
    claude: ClaudeConfig,
    policy: MountPolicy,
}

impl ContainerRunner {
    /// `claude` supplies the flags and environment; its `bin` is ignored (the image's CLI
    /// runs). A container is a sandbox, so callers usually set
    /// `dangerously_skip_permissions` ([`crate::sandbox::Sandbox`] does).
    pub fn new(docker: Docker, config: DockerConfig, claude: ClaudeConfig) -> Self {
        let policy = MountPolicy::new(&config.allowed_roots);
        Self {
            docker,
            config,
            claude,
            policy,
        }
    }

    /// The container's command: the CLI and its flags. The prompt is never in it.
    pub fn command(&self, request: &AgentRequest) -> Vec<String> {
        let mut cmd = vec![CLAUDE_IN_IMAGE.to_owned()];
        cmd.extend(claude_args(&self.claude, request));
        cmd
    }

    async fn run_in_container(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> AgentOutcome {
        let acc = StreamAccumulator::new();
        let run_id = new_run_id();
        let prompt_name = format!("{PROMPT_FILE_PREFIX}{run_id}");
        let (policy, home, workdir) = (
            self.policy.clone(),
            request.home.clone(),
            request.workdir.clone(),
        );
        let checked = tokio::task::spawn_blocking(move || check_mounts(&policy, &home, &workdir))
            .await
            .map_err(|e| e.to_string())
            .and_then(|checked| checked);
        let (home, workdir, run_as) = match checked {
            Ok(checked) => checked,
            Err(why) => return acc.abort(AgentError::Spawn(why)),
        };

        // From here on, whatever happens, the prompt file goes and the mounts come back.
        let prompt_file = home.join(&prompt_name);
        let mounts = vec![workdir.clone(), home.clone()];
        let mut cleanup = Cleanup::new(&self.docker, {
            let (prompt_file, mounts) = (prompt_file.clone(), mounts.clone());
            move || {
                let _ = std::fs::remove_file(&prompt_file);
                run_as.hand_back(&mounts);
            }
        });
        let prompt = request.prompt.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            write_private(&prompt_file, prompt.as_bytes()).map_err(|e| {
                format!("cannot write the prompt to {}: {e}", prompt_file.display())
            })?;
            run_as.hand_over(&mounts).map_err(|e| {
                format!(
                    "cannot give the mounts to the container's user {}: {e}",
                    run_as.user()
                )
            })
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|prepared| prepared);
        if let Err(why) = prepared {
            cleanup.run().await;
            return acc.abort(AgentError::Spawn(why));
        }

        let mut env = container_env(&self.claude, AGENT_HOME, |name| std::env::var_os(name));
        env.push(format!("BORG_PROMPT_FILE={AGENT_HOME}/{prompt_name}"));
        let spec = ContainerSpec {
            run_id,
            owner: request.owner.clone(),
            cmd: self.command(&request),
            env,
            mounts: vec![(workdir, WORKSPACE), (home, AGENT_HOME)],
            run_as,
        };
        let launched = match launch(&self.docker, &self.config, &spec, &mut cleanup).await {
            Ok(launched) => launched,
            Err(why) => {
                cleanup.run().await;
                return acc.abort(AgentError::Spawn(why));
            }
        };

        let (stdout_write, stdout_read) = tokio::io::duplex(64 << 10);
        let stderr = OutputTail::new(STDERR_TAIL_BYTES);
        let mut reader = AbortOnDrop(demux(launched.output, Some(stdout_write), stderr.clone()));
        let exit_task = AbortOnDrop(launched.exit);
        let (config, stderr_note) = (&self.config, stderr.clone());
        let exit = async move {
            let mut exit_task = exit_task;
            let exit = (&mut exit_task.0).await.unwrap_or_default();
            if let Some(note) = exit.oom_note(config) {
                stderr_note.push(note.as_bytes());
            }
            exit.code
        };
        let mut lines = LineReader::new(BufReader::new(stdout_read), MAX_LINE_BYTES);
        let timeouts = (request.idle_timeout, request.hard_timeout);
        let ended = watch(&mut lines, exit, acc, timeouts, &progress).await;
        // Removing the container kills whatever still runs in it and ends its output.
        cleanup.run().await;
        let _ = tokio::time::timeout(STDERR_GRACE, &mut reader.0).await;
        let mut outcome = ended.conclude(&stderr.text(), "claude container run");
        if outcome.error.is_some()
            && let Some(why) = engine_lost(&self.docker).await
        {
            outcome.error = Some(AgentError::Spawn(why));
        }
        outcome
    }
}

impl AgentRunner for ContainerRunner {
    fn run(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>> {
        Box::pin(self.run_in_container(request, progress))
    }
}

/// Writes `bytes` to a new file only its owner can read (the hand-over makes that the
/// container's user).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Creates the home and workdir when missing and checks both against the mount policy;
/// returns them resolved, and who the container runs as.
fn check_mounts(
    policy: &MountPolicy,
    home: &Path,
    workdir: &Path,
) -> Result<(PathBuf, PathBuf, RunAs), String> {
    let home = policy.create_and_check(home)?;
    let workdir = policy.create_and_check(workdir)?;
    let run_as = RunAs::for_this_process()
        .map_err(|e| format!("cannot tell which user borg runs as: {e}"))?;
    Ok((home, workdir, run_as))
}
