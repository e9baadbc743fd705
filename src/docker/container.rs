//! The one container shape borg runs ([`ContainerSpec`] → [`create_body`]: hardened,
//! labelled, mounts checked by the caller), its start ([`launch`]: create, attach, start,
//! wait), its removal whatever happens ([`Cleanup`]), and [`remove_orphans`].
//!
//! Output is read through `attach`, which works with any logging driver and, attached before
//! the start, misses nothing. The exit code comes from `wait` with `condition=not-running`
//! sent after the start (a `next-exit` wait only counts if the engine received it before the
//! start, which a lazy stream does not guarantee).

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::ownership::RunAs;
use super::{DockerConfig, DockerError, engine_error};
use crate::claude::process::{OutputTail, RunProcesses};

/// Where the request's workdir is mounted, and the container's working directory.
pub const WORKSPACE: &str = "/workspace";
/// Where the request's home is mounted; the container's `HOME`.
pub const AGENT_HOME: &str = "/home/agent";
/// Labels of every borg container.
pub const LABEL_BORG: &str = "borg";
pub const LABEL_RUN: &str = "borg.run";
pub const LABEL_TASK: &str = "borg.task";
pub const LABEL_INSTANCE: &str = "borg.instance";

/// What one container runs, and with what; the hardening comes from [`DockerConfig`].
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// `borg.run`, and the container's name `borg-<run_id>` ([`new_run_id`]).
    pub run_id: String,
    /// `borg.task`: who the run is for (`task-12`, `chat-tg_42`).
    pub owner: String,
    /// Given to the image's entrypoint, which runs it.
    pub cmd: Vec<String>,
    /// `NAME=value`, all of it (nothing of borg's environment is added).
    pub env: Vec<String>,
    /// (host path, already checked by the mount policy and resolved; container path).
    pub mounts: Vec<(PathBuf, &'static str)>,
    pub run_as: RunAs,
}

/// A fresh run id: unique across this daemon's runs and earlier daemons' (pid, time, count).
pub fn new_run_id() -> String {
    RunProcesses::new_marker()
}

/// The create request of a run: image, command, environment, user, labels, mounts, and the
/// hardening every borg container gets.
pub fn create_body(config: &DockerConfig, spec: &ContainerSpec) -> ContainerCreateBody {
    let labels = HashMap::from([
        (LABEL_BORG.to_owned(), "1".to_owned()),
        (LABEL_RUN.to_owned(), spec.run_id.clone()),
        (LABEL_TASK.to_owned(), spec.owner.clone()),
        (LABEL_INSTANCE.to_owned(), config.instance.clone()),
    ]);
    let mounts = spec
        .mounts
        .iter()
        .map(|(source, target)| Mount {
            typ: Some(MountType::BIND),
            source: Some(source.to_string_lossy().into_owned()),
            target: Some((*target).to_owned()),
            read_only: Some(false),
            ..Default::default()
        })
        .collect();
    ContainerCreateBody {
        image: Some(config.image.clone()),
        cmd: Some(spec.cmd.clone()),
        env: Some(spec.env.clone()),
        user: Some(spec.run_as.user()),
        working_dir: Some(WORKSPACE.to_owned()),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            pids_limit: Some(config.pids_limit),
            memory: Some(config.memory_bytes),
            // No swap beyond the memory limit: the limit is the limit.
            memory_swap: Some(config.memory_bytes),
            nano_cpus: Some(config.nano_cpus),
            init: Some(true),
            network_mode: Some(config.network.clone()),
            mounts: Some(mounts),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Removes a run's container (if one was created) and then runs the run's `after` step
/// (giving the mounts back, deleting the prompt file), when [`Cleanup::run`] is awaited or,
/// failing that, from a spawned task when it is dropped: a dropped run future leaves nothing.
pub struct Cleanup {
    docker: Docker,
    container: Option<String>,
    after: Option<Box<dyn FnOnce() + Send>>,
}

impl Cleanup {
    pub fn new(docker: &Docker, after: impl FnOnce() + Send + 'static) -> Self {
        Self {
            docker: docker.clone(),
            container: None,
            after: Some(Box::new(after)),
        }
    }

    /// The container to remove, by id or name.
    pub fn set_container(&mut self, id: &str) {
        self.container = Some(id.to_owned());
    }

    /// Force-removes the container (a running one is killed) and then runs `after`.
    pub async fn run(mut self) {
        let (container, after) = (self.container.take(), self.after.take());
        finish(self.docker.clone(), container, after).await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (container, after) = (self.container.take(), self.after.take());
        if container.is_none() && after.is_none() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(finish(self.docker.clone(), container, after));
            }
            Err(_) => {
                tracing::error!(
                    ?container,
                    "a run ended outside the runtime; its container \
                    is left for remove_orphans at the next start"
                );
                if let Some(after) = after {
                    after();
                }
            }
        }
    }
}

async fn finish(
    docker: Docker,
    container: Option<String>,
    after: Option<Box<dyn FnOnce() + Send>>,
) {
    if let Some(id) = container {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => tracing::debug!(container = %id, "container removed"),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => {
                tracing::error!(container = %id, %err,
                    "cannot remove a container now; it is removed once the engine answers");
                unremoved().push(id);
            }
        }
    }
    if let Some(after) = after
        && let Err(err) = tokio::task::spawn_blocking(after).await
    {
        tracing::error!(%err, "a run's cleanup step failed");
    }
}

/// Containers whose removal failed (the engine did not answer), to remove once it does.
/// Process-wide, like the engine: whichever runner or probe next reaches the engine clears
/// them, and the next start's orphan sweep takes any a crash left.
static UNREMOVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn unremoved() -> std::sync::MutexGuard<'static, Vec<String>> {
    UNREMOVED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the containers whose removal failed earlier; returns how many are still left.
pub async fn remove_unremoved(docker: &Docker) -> usize {
    let pending = std::mem::take(&mut *unremoved());
    for id in pending {
        // `finish` puts the id back when the engine still does not answer.
        finish(docker.clone(), Some(id), None).await;
    }
    unremoved().len()
}

/// Whether a run that ended badly did so because the engine went away: it no longer
/// answers. Then the run is the sandbox's failure, not the agent's or the tests'.
pub async fn engine_lost(docker: &Docker) -> Option<String> {
    docker
        .ping()
        .await
        .err()
        .map(|e| format!("the Docker engine went away during the run: {e}"))
}

/// The output stream of an attached container.
pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A started container.
pub struct Launched {
    pub id: String,
    /// stdout and stderr, demultiplexed, from the first byte.
    pub output: Output,
    /// Resolves to how the container ended.
    pub exit: JoinHandle<Exit>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exit {
    /// The exit code (`None` when the engine could not say).
    pub code: Option<i32>,
    /// The kernel's out-of-memory killer ended it (the memory limit was reached).
    pub oom_killed: bool,
}

impl Exit {
    /// The line a run's output gets when the out-of-memory killer ended its container.
    pub fn oom_note(&self, config: &DockerConfig) -> Option<String> {
        self.oom_killed.then(|| {
            format!(
                "borg: the container was killed by the out-of-memory killer: it used all of its \
                 {} MiB memory limit\n",
                config.memory_bytes >> 20
            )
        })
    }
}

/// Creates, attaches to and starts the container of `spec`, registering it with `cleanup`
/// as soon as it exists. An `Err` is a message for the caller's error type.
pub async fn launch(
    docker: &Docker,
    config: &DockerConfig,
    spec: &ContainerSpec,
    cleanup: &mut Cleanup,
) -> Result<Launched, String> {
    let run_id = &spec.run_id;
    let name = format!("borg-{run_id}");
    let body = create_body(config, spec);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    // By name, before the request: a run dropped while the engine creates the container
    // still removes it (unless the removal overtakes the creation; then the container is
    // left created, never started, for remove_orphans).
    cleanup.set_container(&name);
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|err| match err {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => format!(
                "the image {} is missing: build it from container/Dockerfile ({err})",
                config.image
            ),
            err => engine_error("creating a container", &err),
        })?;
    let id = created.id;
    let attach = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdout(true)
        .stderr(true)
        .build();
    let attached = docker
        .attach_container(&id, Some(attach))
        .await
        .map_err(|err| engine_error("attaching to a container", &err))?;
    docker
        .start_container(&id, None)
        .await
        .map_err(|err| engine_error("starting a container", &err))?;
    tracing::info!(container = %id, run_id = %run_id, owner = %spec.owner, image = %config.image,
        "container started");
    let exit = tokio::spawn(wait_exit(docker.clone(), id.clone()));
    Ok(Launched {
        id,
        output: attached.output,
        exit,
    })
}

/// Copies a container's output as it comes: stdout into `stdout`, or into `tail` as well when
/// there is no `stdout` (a test command's output is one interleaved tail), and stderr into
/// `tail`. Ends, closing `stdout`, when the container's output ends.
pub fn demux(
    mut output: Output,
    mut stdout: Option<DuplexStream>,
    tail: OutputTail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    match &mut stdout {
                        Some(pipe) => {
                            // The reader is gone: the run is over.
                            if pipe.write_all(&message).await.is_err() {
                                break;
                            }
                        }
                        None => tail.push(&message),
                    }
                }
                Ok(LogOutput::StdErr { message }) => tail.push(&message),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(err) => {
                    tracing::warn!(%err, "reading a container's output failed");
                    break;
                }
            }
        }
    })
}

/// Aborts a task when dropped, so a dropped run leaves no task behind.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for the container to stop, then asks the engine whether the out-of-memory killer
/// stopped it (the exit code alone, 137, is also what a plain SIGKILL gives).
async fn wait_exit(docker: Docker, id: String) -> Exit {
    let code = wait_code(&docker, &id).await;
    let oom_killed = match docker.inspect_container(&id, None).await {
        Ok(info) => info.state.and_then(|s| s.oom_killed).unwrap_or(false),
        Err(err) => {
            tracing::debug!(container = %id, %err, "could not inspect an ended container");
            false
        }
    };
    if oom_killed {
        tracing::warn!(container = %id, "the out-of-memory killer ended a container");
    }
    Exit { code, oom_killed }
}

async fn wait_code(docker: &Docker, id: &str) -> Option<i32> {
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(id, Some(options));
    match wait.next().await {
        Some(Ok(response)) => i32::try_from(response.status_code).ok(),
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            i32::try_from(code).ok()
        }
        Some(Err(err)) => {
            tracing::warn!(container = %id, %err, "waiting for a container failed");
            None
        }
        None => None,
    }
}

/// Force-removes this daemon's containers (labels `borg.run` and `borg.instance` of
/// `config`): those it left when it was killed. The daemon calls it at startup, before it
/// starts any run. Returns how many it removed.
pub async fn remove_instance_orphans(
    docker: &Docker,
    config: &DockerConfig,
) -> Result<usize, DockerError> {
    let instance = format!("{LABEL_INSTANCE}={}", config.instance);
    remove_labelled(docker, vec![LABEL_RUN.to_owned(), instance]).await
}

/// Force-removes every borg container on the engine (label `borg.run`), whichever daemon
/// or test started it: for an operator clearing up by hand, never while runs may be live.
pub async fn remove_orphans(docker: &Docker) -> Result<usize, DockerError> {
    remove_labelled(docker, vec![LABEL_RUN.to_owned()]).await
}

async fn remove_labelled(docker: &Docker, labels: Vec<String>) -> Result<usize, DockerError> {
    let filters = HashMap::from([("label", labels)]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .map_err(|err| DockerError::Other(engine_error("listing borg's containers", &err)))?;
    // All at once: each removal waits for the engine to kill and tear down its container.
    let removals = found.into_iter().filter_map(|container| {
        let id = container.id?;
        let run = container
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_RUN).cloned())
            .unwrap_or_default();
        Some(async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) => {
                    tracing::warn!(container = %id, %run, "removed a container a previous borg left");
                    Ok(1)
                }
                // Gone in the meantime (its own run removed it): nothing to do.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(0),
                Err(err) => Err(DockerError::Other(engine_error(
                    &format!("removing the orphaned container {id}"),
                    &err,
                ))),
            }
        })
    });
    let results = futures_util::future::join_all(removals).await;
    results.into_iter().sum()
}
