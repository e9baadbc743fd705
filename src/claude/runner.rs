//! [`ClaudeRunner`]: the [`AgentRunner`] port implemented with the real `claude` CLI as a
//! local subprocess.
//!
//! One run is `claude --print --output-format stream-json --verbose --model=M [--resume=SID]
//! [--allowedTools=a,b] [--append-system-prompt=S] [--max-turns=N]` with the prompt on stdin,
//! cwd = the request's workdir and HOME = its home (both created if missing; `--resume` finds
//! its transcript only under the same pair). Values are passed as `--flag=value` so that a
//! persona starting with "-" is not taken for a flag.
//!
//! Everything the run started is SIGKILLed when it ends, in any way ([`RunProcesses`]: the
//! CLI's own process group plus whatever carries the run's marker variable): idle timeout
//! (no stdout line for `idle_timeout`; `system/api_retry` lines count), hard timeout, the
//! caller dropping the future, and also a normal exit, which removes whatever the agent left
//! running in the background. One known gap: after a normal exit the leader is reaped before
//! its group is killed, so if the group is already empty its id could in theory have been
//! reused in between (Linux does not reuse a pid while a group of that id has members).
//!
//! `--dangerously-skip-permissions` is off by default: on the host, tools outside
//! `allowed_tools` are refused (and noted) rather than run. [`ClaudeConfig`] can turn it on
//! for runs that are sandboxed already (a container); it then also sets `IS_SANDBOX=1`,
//! without which the CLI refuses the flag when running as root.

use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use actors::agent::{AgentError, AgentOutcome, AgentRequest, AgentRunner, ProgressSink};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::accumulator::StreamAccumulator;
use super::env::{RUN_MARKER_VAR, child_env};
use super::process::{LineReader, MAX_LINE_BYTES, RunProcesses, StderrTail};
use super::settings::ClaudeConfig;
use super::watch::{Ended, watch};

/// How long to wait for stderr to end once the run's processes are dead.
pub const STDERR_GRACE: Duration = Duration::from_secs(1);

/// Runs Claude Code as a local subprocess.
#[derive(Debug, Clone)]
pub struct ClaudeRunner {
    config: ClaudeConfig,
}

impl ClaudeRunner {
    pub fn new(config: ClaudeConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &ClaudeConfig {
        &self.config
    }

    /// The command line of a run, without the program name. The prompt is never in it.
    pub fn args(&self, request: &AgentRequest) -> Vec<String> {
        claude_args(&self.config, request)
    }

    fn spawn(&self, request: &AgentRequest, marker: &str) -> Result<Child, AgentError> {
        let mut cmd = Command::new(&self.config.bin);
        cmd.args(self.args(request))
            .env_clear()
            .envs(child_env(&self.config, &request.home, |name| {
                std::env::var_os(name)
            }))
            .env(RUN_MARKER_VAR, marker)
            .current_dir(&request.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Belt and braces with RunProcesses: tokio also reaps the leader in the
            // background when the future is dropped, so no zombie is left.
            .kill_on_drop(true);
        cmd.spawn().map_err(|err| {
            AgentError::Spawn(format!(
                "cannot start {}: {err}. Install Claude Code (npm install -g \
                 @anthropic-ai/claude-code) or set CLAUDE_BIN to its path",
                self.config.bin.display()
            ))
        })
    }

    async fn run_claude(&self, request: AgentRequest, progress: ProgressSink) -> AgentOutcome {
        let acc = StreamAccumulator::new();
        for dir in [&request.home, &request.workdir] {
            if let Err(err) = tokio::fs::create_dir_all(dir).await {
                let why = format!("cannot create {}: {err}", dir.display());
                return acc.abort(AgentError::Spawn(why));
            }
        }
        let marker = RunProcesses::new_marker();
        let mut child = match self.spawn(&request, &marker) {
            Ok(child) => child,
            Err(err) => return acc.abort(err),
        };
        let Some(pid) = child.id() else {
            return acc.abort(AgentError::Spawn("claude exited at once".into()));
        };
        let processes = RunProcesses::new(pid, &marker);
        tracing::info!(pgid = processes.pgid(), workdir = %request.workdir.display(),
            resume = ?request.resume, "claude run started");

        // Written from its own task so a prompt larger than the pipe buffer cannot block
        // the reading of stdout; dropping the handle at the end closes stdin (EOF = the end
        // of the prompt).
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(mut stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            return acc.abort(AgentError::Spawn("claude's pipes were not set up".into()));
        };
        let prompt = request.prompt.clone();
        tokio::spawn(async move {
            if let Err(err) = stdin.write_all(prompt.as_bytes()).await {
                tracing::warn!(%err, "could not write the whole prompt to claude's stdin");
            }
        });
        let stderr = StderrTail::spawn(stderr);
        let mut lines = LineReader::new(BufReader::new(stdout), MAX_LINE_BYTES);

        let exit = async {
            match child.wait().await {
                Ok(status) => status.code(),
                Err(err) => {
                    tracing::warn!(%err, "waiting for claude failed");
                    None
                }
            }
        };
        let timeouts = (request.idle_timeout, request.hard_timeout);
        let ended = watch(&mut lines, exit, acc, timeouts, &progress).await;
        // Everything the run started goes, whatever happened.
        processes.kill_and_settle().await;
        if let Ended::Stopped { .. } = ended {
            // The leader is dead (SIGKILL); reap it now rather than leave a zombie.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        let tail = stderr.finish(STDERR_GRACE).await;
        ended.conclude(&tail, "claude run")
    }
}

/// The command line of a run of `config`, without the program name; the process and the
/// container runner both use it. The prompt is never in it.
pub fn claude_args(config: &ClaudeConfig, request: &AgentRequest) -> Vec<String> {
    let mut args: Vec<String> = ["--print", "--output-format", "stream-json", "--verbose"]
        .map(String::from)
        .into();
    args.push(format!("--model={}", request.model));
    if let Some(session) = &request.resume {
        args.push(format!("--resume={session}"));
    }
    if !request.allowed_tools.is_empty() {
        args.push(format!(
            "--allowedTools={}",
            request.allowed_tools.join(",")
        ));
    }
    if let Some(prompt) = &request.system_prompt {
        args.push(format!("--append-system-prompt={prompt}"));
    }
    if let Some(turns) = request.max_turns {
        args.push(format!("--max-turns={turns}"));
    }
    if config.dangerously_skip_permissions {
        args.push("--dangerously-skip-permissions".into());
    }
    args
}

impl AgentRunner for ClaudeRunner {
    fn run(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> Pin<Box<dyn Future<Output = AgentOutcome> + Send + '_>> {
        Box::pin(self.run_claude(request, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AgentRequest {
        AgentRequest {
            owner: "test".into(),
            prompt: "never an argument".into(),
            model: "m".into(),
            resume: None,
            home: "/h".into(),
            workdir: "/w".into(),
            allowed_tools: Vec::new(),
            system_prompt: None,
            max_turns: None,
            idle_timeout: Duration::from_secs(1),
            hard_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn permissions_are_skipped_only_when_configured() {
        let args = ClaudeRunner::new(ClaudeConfig::default()).args(&request());
        assert_eq!(
            args,
            [
                "--print",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model=m"
            ]
        );
        let config = ClaudeConfig {
            dangerously_skip_permissions: true,
            ..ClaudeConfig::default()
        };
        let args = ClaudeRunner::new(config).args(&request());
        assert_eq!(
            args.last().map(String::as_str),
            Some("--dangerously-skip-permissions")
        );
    }
}
