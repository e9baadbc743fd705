//! Agent containers through the Docker Engine API (bollard): the agent image, hardened runs
//! of the claude CLI and of test commands, and cleanup of containers a killed daemon left.
//!
//! - [`image`]: the build context of `container/` made in memory, the build, and
//!   [`image_status`] (present? built from which context?);
//! - [`mounts`]: [`MountPolicy`], which host paths may be bind-mounted at all;
//! - [`ownership`]: who the container runs as, and handing the mounts to that user;
//! - [`container`]: the one hardened container shape every run uses, its start, its
//!   always-removal ([`container::Cleanup`]) and [`remove_orphans`];
//! - [`agent`]: [`ContainerRunner`], the `AgentRunner` port in a container;
//! - [`test_runner`]: [`ContainerTestRunner`], the `TestRunner` port in a container.
//!
//! Decisions that hold for every container borg starts:
//!
//! - **Hardening**: all capabilities dropped, `no-new-privileges`, 256 processes, 1 GiB of
//!   memory, 2 CPUs, `init` as PID 1 (reaps what the agent leaves), labels `borg=1`,
//!   `borg.run=<unique run id>`, `borg.task=<owner>` and `borg.instance=<which daemon>`,
//!   network from [`DockerConfig`]
//!   (`bridge` by default; tests use `host` so the CLI inside reaches a fake API on
//!   127.0.0.1).
//! - **User**: never root. When borg itself is not root the container runs as borg's own
//!   uid:gid, so files the agent writes belong to borg as they would with a subprocess. When
//!   borg runs as root the container runs as 1000:1000 (the image's `agent`), and borg hands
//!   the mounted worktree and home to 1000:1000 before the run and back to itself after it:
//!   the agent can write its files, and afterwards the host's git, which refuses to work in a
//!   repository owned by another user, still works on the worktree.
//! - **Mounts**: exactly the request's workdir at `/workspace` and its home at `/home/agent`,
//!   both read-write, both checked by [`MountPolicy`] first; a refused mount fails the run
//!   (`AgentError::Spawn`, `TestRunError`) with the path and the rule, and creates nothing.
//! - **The prompt** goes in a file in the mounted home that the image's entrypoint opens as
//!   stdin and deletes before the CLI starts (`container/entrypoint.sh`); borg deletes it too
//!   when the run ends, in case the entrypoint never ran.
//! - **Removal**: the container is removed when the run ends in any way, including the caller
//!   dropping the future; [`remove_instance_orphans`] clears those a killed daemon left,
//!   at its next start. Only its own: the `borg.instance` label (derived from DATA_DIR)
//!   keeps two daemons, or parallel tests, on one engine from removing each other's runs.

pub mod agent;
pub mod container;
pub mod image;
pub mod mounts;
pub mod ownership;
pub mod test_runner;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

pub use agent::ContainerRunner;
pub use container::{remove_instance_orphans, remove_orphans, remove_unremoved};
pub use image::{
    BuildContext, ImageStatus, build_agent_image, context_hash, host_extra_ca_certs, image_status,
};
pub use mounts::{MountPolicy, RefusedMount};
pub use test_runner::ContainerTestRunner;

/// The image `AGENT_IMAGE` names by default.
pub const DEFAULT_IMAGE: &str = "borg-agent:latest";
/// The network mode `AGENT_NETWORK` names by default.
pub const DEFAULT_NETWORK: &str = "bridge";
/// How long connecting may take before the engine counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How borg runs containers; one per daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    /// Which daemon the containers belong to (label `borg.instance`): what
    /// [`remove_instance_orphans`] removes. [`DockerConfig::new`] derives it from the first
    /// allowed root, DATA_DIR by convention, so it is stable across restarts.
    pub instance: String,
    /// The agent image (`AGENT_IMAGE`), built from `container/Dockerfile`.
    pub image: String,
    /// `HostConfig.NetworkMode` (`AGENT_NETWORK`): `bridge`, `host`, `none` or a network name.
    pub network: String,
    /// Host directories under which bind mounts are allowed (DATA_DIR, the repositories).
    /// Empty refuses every mount.
    pub allowed_roots: Vec<PathBuf>,
    /// `HostConfig.Memory`, bytes.
    pub memory_bytes: i64,
    /// `HostConfig.NanoCpus`: CPUs × 10⁹.
    pub nano_cpus: i64,
    /// `HostConfig.PidsLimit`: a fork bomb stops here.
    pub pids_limit: i64,
}

impl DockerConfig {
    /// The defaults, with `allowed_roots` (put DATA_DIR first: the instance comes from it).
    pub fn new(allowed_roots: Vec<PathBuf>) -> Self {
        let first = allowed_roots
            .first()
            .map(|r| r.as_os_str().as_encoded_bytes());
        Self {
            instance: digest(first.unwrap_or_default())[..16].to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            network: DEFAULT_NETWORK.to_owned(),
            allowed_roots,
            memory_bytes: 1 << 30,
            nano_cpus: 2_000_000_000,
            pids_limit: 256,
        }
    }
}

/// What went wrong talking to the engine, as a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerError {
    /// No engine answered.
    Unreachable(String),
    /// An image build failed; `step` is the Dockerfile step that failed (when known) and
    /// `output` the end of what the build printed.
    Build {
        step: Option<String>,
        message: String,
        output: String,
    },
    /// Any other engine or I/O error, with what borg was doing.
    Other(String),
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(why) => f.write_str(why),
            Self::Build {
                step,
                message,
                output,
            } => {
                match step {
                    Some(step) => write!(f, "the image build failed at `{step}`: {message}")?,
                    None => write!(f, "the image build failed: {message}")?,
                }
                write!(f, "\n--- build output (end) ---\n{output}")
            }
            Self::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DockerError {}

/// Connects to the engine `DOCKER_HOST` names (the local socket when unset) and agrees on
/// an API version with it (bollard speaks a newer one than Debian's dockerd 20.10).
pub async fn connect() -> Result<Docker, DockerError> {
    let host = std::env::var("DOCKER_HOST").ok();
    let shown = host.as_deref().unwrap_or("unix:///var/run/docker.sock");
    negotiate(Docker::connect_with_defaults(), shown).await
}

/// [`connect`] to `host` (`unix:///path`, `tcp://…`, `http://…`) instead of `DOCKER_HOST`.
pub async fn connect_at(host: &str) -> Result<Docker, DockerError> {
    negotiate(Docker::connect_with_host(host), host).await
}

async fn negotiate(
    docker: Result<Docker, bollard::errors::Error>,
    shown: &str,
) -> Result<Docker, DockerError> {
    let unreachable = |why: String| {
        DockerError::Unreachable(format!(
            "no Docker engine is reachable at {shown}: {why}. Start one (Debian: `apt-get \
             install docker.io`, then `dockerd &` as root), point DOCKER_HOST at it, or set \
             AGENT_SANDBOX=process to run agents as plain processes"
        ))
    };
    let docker = docker.map_err(|e| unreachable(e.to_string()))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A stable hex digest (FNV-1a, 128 bits) that needs no dependency: it tells contents apart,
/// it does not resist forgery.
pub(crate) fn digest(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{hash:032x}")
}

/// The daemon's wording of an engine error: what borg was doing, then the engine's words.
pub(crate) fn engine_error(doing: &str, err: &bollard::errors::Error) -> String {
    format!("Docker engine error while {doing}: {err}")
}
