//! Helpers shared by the claude tests: finding the recorded fixtures and the real CLI (or
//! skipping loudly), building requests, collecting progress, and looking for a run's
//! processes in /proc.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::agent::{AgentProgress, AgentRequest, ProgressSink};
use borg::claude::{ClaudeConfig, ClaudeRunner};

/// The exact command that installs the CLI these tests were written against (CI runs it
/// too). The optional platform packages are pinned to the same version by the package:
///
/// `npm install --no-save --no-audit --no-fund @anthropic-ai/claude-code@2.1.328`
pub const CLAUDE_VERSION: &str = "2.1.328";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A missing component: say so loudly, and fail instead when `BORG_TEST_STRICT=1` (CI).
pub fn skip(why: &str) {
    if std::env::var("BORG_TEST_STRICT").as_deref() == Ok("1") {
        panic!("BORG_TEST_STRICT=1 and {why}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
}

/// `tests/fixtures/claude-code-2.1.328`: recorded output of the real CLI, copied verbatim into
/// the repository so the tests do not depend on anything beside it.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = manifest_dir().join(format!("tests/fixtures/claude-code-{CLAUDE_VERSION}"));
    if dir.is_dir() {
        return Some(dir);
    }
    skip(&format!(
        "the recorded claude fixtures are missing at {}",
        dir.display()
    ));
    None
}

/// The real CLI: `CLAUDE_BIN`, else `claude` on PATH, else `node_modules/.bin/claude` of this
/// repository (where the npm command above puts it).
pub fn locate_claude() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::var_os("CLAUDE_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join("claude")))
        .chain([manifest_dir().join("node_modules/.bin/claude")]);
    for bin in candidates {
        if bin.is_file() {
            return Some(bin);
        }
    }
    skip(&format!(
        "the claude CLI was not found (CLAUDE_BIN, PATH, node_modules); install it with \
         `npm install --no-save --no-audit --no-fund @anthropic-ai/claude-code@{CLAUDE_VERSION}`"
    ));
    None
}

/// `tests/support/fake-claude.sh`, the stand-in binary for process-handling tests.
pub fn fake_claude() -> PathBuf {
    manifest_dir().join("tests/support/fake-claude.sh")
}

/// A runner of the stand-in in `mode` (see the script), with `extra` in its environment.
pub fn fake_runner(mode: &str, extra: &[(&str, &str)]) -> ClaudeRunner {
    let mut extra_env = vec![("FAKE_MODE".to_owned(), mode.to_owned())];
    extra_env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ClaudeRunner::new(ClaudeConfig {
        bin: fake_claude(),
        extra_env,
        inherit_model_access: false,
        ..ClaudeConfig::default()
    })
}

/// The path of a recorded fixture, as the stand-in's `FAKE_FIXTURE`.
pub fn fixture_path(name: &str) -> Option<String> {
    let path = fixtures_dir()?.join(format!("{name}.jsonl"));
    Some(path.to_str()?.to_owned())
}

/// A file the stand-in wrote in its working directory.
pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A pid the stand-in recorded (`pid.txt` is the leader's, so also the process group id).
pub fn recorded_pid(dir: &Path, file: &str) -> i32 {
    read(dir, file).trim().parse().unwrap()
}

/// A request with its HOME and workdir under `root`, and generous timeouts.
pub fn request(root: &Path, prompt: &str) -> AgentRequest {
    AgentRequest {
        owner: "test".to_owned(),
        prompt: prompt.to_owned(),
        model: "claude-sonnet-4-6".to_owned(),
        resume: None,
        home: root.join("home"),
        workdir: root.join("work"),
        allowed_tools: Vec::new(),
        system_prompt: None,
        max_turns: None,
        idle_timeout: Duration::from_secs(60),
        hard_timeout: Duration::from_secs(120),
    }
}

/// Collects the progress events of a run.
#[derive(Clone, Default)]
pub struct Progress(Arc<Mutex<Vec<AgentProgress>>>);

impl Progress {
    pub fn sink(&self) -> ProgressSink {
        let events = Arc::clone(&self.0);
        Box::new(move |event| events.lock().unwrap().push(event))
    }

    pub fn events(&self) -> Vec<AgentProgress> {
        self.0.lock().unwrap().clone()
    }

    pub fn tool_summaries(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                AgentProgress::ToolUse { summary, .. } => Some(summary),
                _ => None,
            })
            .collect()
    }
}

/// One line of `/proc/<pid>/stat`: (pid, state, ppid, pgrp).
fn stat(pid: i32) -> Option<(i32, char, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((pid, state, ppid, pgrp))
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes of group `pgid` that are still alive. A zombie counts as alive only while its
/// parent is this test process (then the runner failed to reap it); one reparented to init
/// is dead and init's to reap.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap();
    all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|&(_, state, ppid, pgrp)| pgrp == pgid && (state != 'Z' || ppid == me))
        .map(|(pid, ..)| pid)
        .collect()
}

/// Whether `pid` is alive, by the same rule as [`live_group_members`].
pub fn is_alive(pid: i32) -> bool {
    let me = i32::try_from(std::process::id()).unwrap();
    stat(pid).is_some_and(|(_, state, ppid, _)| state != 'Z' || ppid == me)
}

/// Children of this test process whose working directory is `dir`: the runs started there.
pub fn our_children_in(dir: &Path) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|&(pid, state, ppid, _)| {
            ppid == me
                && state != 'Z'
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
        })
        .map(|(pid, ..)| pid)
        .collect()
}

/// Waits up to 10 s for `ok`.
pub async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
