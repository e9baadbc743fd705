//! [`ContainerTestRunner`]: the `TestRunner` port in a hardened container of the agent image:
//! `sh -c <command>` with the worktree at `/workspace`, stdout and stderr interleaved into
//! one bounded tail, killed and removed at the timeout. The container is always removed and
//! the worktree always given back, as for agent runs ([`super::container::Cleanup`]).
//!
//! The command gets the image's environment (`PATH`, `HOME=/home/agent`) plus `LANG`, and
//! nothing of borg's: a test suite has no business with borg's secrets or model credentials.

use std::pin::Pin;

use actors::pipeline::ports::{TestOutcome, TestRequest, TestRunError, TestRunner};
use bollard::Docker;

use super::DockerConfig;
use super::container::{
    AbortOnDrop, Cleanup, ContainerSpec, WORKSPACE, demux, engine_lost, launch, new_run_id,
};
use super::mounts::MountPolicy;
use super::ownership::RunAs;
use crate::claude::process::OutputTail;
use crate::claude::runner::STDERR_GRACE;
use crate::sandbox::TEST_OUTPUT_TAIL_BYTES;

/// Runs test commands in containers.
#[derive(Clone)]
pub struct ContainerTestRunner {
    docker: Docker,
    config: DockerConfig,
    policy: MountPolicy,
}

impl ContainerTestRunner {
    pub fn new(docker: Docker, config: DockerConfig) -> Self {
        let policy = MountPolicy::new(&config.allowed_roots);
        Self {
            docker,
            config,
            policy,
        }
    }

    async fn run_in_container(&self, request: TestRequest) -> Result<TestOutcome, TestRunError> {
        let refused = |why: String| {
            TestRunError(format!(
                "cannot run the tests of {} in a container: {why}",
                request.owner
            ))
        };
        let (policy, workdir) = (self.policy.clone(), request.workdir.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let resolved = policy.check(&workdir).map_err(|r| r.to_string())?;
            if !resolved.is_dir() {
                return Err(format!(
                    "the worktree {} is not a directory",
                    workdir.display()
                ));
            }
            let run_as = RunAs::for_this_process()
                .map_err(|e| format!("cannot tell which user borg runs as: {e}"))?;
            Ok((resolved, run_as))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|checked| checked);
        let (workdir, run_as) = checked.map_err(refused)?;

        let mounts = vec![workdir.clone()];
        let mut cleanup = Cleanup::new(&self.docker, {
            let mounts = mounts.clone();
            move || run_as.hand_back(&mounts)
        });
        let handed = tokio::task::spawn_blocking(move || run_as.hand_over(&mounts))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.map_err(|e| format!("cannot give the worktree to {}: {e}", run_as.user()))
            });
        if let Err(why) = handed {
            cleanup.run().await;
            return Err(refused(why));
        }

        let spec = ContainerSpec {
            run_id: new_run_id(),
            owner: request.owner.clone(),
            cmd: vec!["sh".into(), "-c".into(), request.command.clone()],
            env: vec!["LANG=C.UTF-8".into()],
            mounts: vec![(workdir, WORKSPACE)],
            run_as,
        };
        let launched = match launch(&self.docker, &self.config, &spec, &mut cleanup).await {
            Ok(launched) => launched,
            Err(why) => {
                cleanup.run().await;
                return Err(refused(why));
            }
        };
        let tail = OutputTail::new(TEST_OUTPUT_TAIL_BYTES);
        let mut reader = AbortOnDrop(demux(launched.output, None, tail.clone()));
        let mut exit = AbortOnDrop(launched.exit);
        let ended = tokio::time::timeout(request.timeout, &mut exit.0).await;
        let (exit_code, timed_out) = match ended {
            Ok(exit) => {
                // The output ends with the container; take what is still in flight.
                let _ = tokio::time::timeout(STDERR_GRACE, &mut reader.0).await;
                let exit = exit.unwrap_or_default();
                if let Some(note) = exit.oom_note(&self.config) {
                    tail.push(note.as_bytes());
                }
                (exit.code, false)
            }
            Err(_) => (None, true),
        };
        cleanup.run().await;
        // No exit code although the command was not stopped for its timeout: the engine could
        // not say how it ended, maybe because it is gone (a failing test has a code).
        if exit_code.is_none()
            && !timed_out
            && let Some(why) = engine_lost(&self.docker).await
        {
            return Err(refused(why));
        }
        if timed_out {
            tracing::warn!(owner = %request.owner, timeout = ?request.timeout,
                "a test command ran past its timeout and was stopped");
        }
        Ok(TestOutcome {
            passed: exit_code == Some(0),
            exit_code,
            timed_out,
            output_tail: tail.text(),
        })
    }
}

impl TestRunner for ContainerTestRunner {
    fn run(
        &self,
        request: TestRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TestOutcome, TestRunError>> + Send + '_>> {
        Box::pin(self.run_in_container(request))
    }
}
