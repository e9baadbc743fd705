//! The control socket's requests and answers. Every answer is JSON: the status report, or
//! `{"ok": true, ...}`, or `{"ok": false, "error": "<what was wrong>"}` for a bad request.

use actors::pipeline::desk::{DeskMsg, create_task, desk};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ControlArgs, report};

/// Longer than the desk's own wait on a repository creating a task.
const DESK_WAIT_MS: u64 = 70_000;

#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Status,
    Tasks,
    Task {
        id: u64,
    },
    TaskAdd {
        #[serde(default)]
        repo: Option<String>,
        title: String,
        #[serde(default)]
        description: String,
    },
    /// Start a repository's release train now (`borg release`).
    Release {
        #[serde(default)]
        repo: Option<String>,
    },
    /// Rebuild and restart borg for the head of `PIPELINE_REPO`'s main, as a release would
    /// (`crate::self_update`); answers once the update is queued.
    SelfUpdate,
    /// Write a consistent copy of the store to `path` (absolute), through the store's own
    /// handle (the daemon holds redb's lock); `force` replaces an existing file
    /// (`crate::backup`).
    Backup {
        path: std::path::PathBuf,
        #[serde(default)]
        force: bool,
    },
}

pub(super) fn error(message: String) -> Value {
    json!({"ok": false, "error": message})
}

pub(super) async fn answer(line: &str, args: &ControlArgs) -> Value {
    let request: Request = match serde_json::from_str(line) {
        Ok(request) => request,
        Err(e) => return error(format!("bad request {line:?}: {e}")),
    };
    match request {
        Request::Status => {
            serde_json::to_value(report(args)).unwrap_or_else(|e| error(e.to_string()))
        }
        Request::Tasks => match desk() {
            Some(desk) => match ractor::call_t!(desk, DeskMsg::List, DESK_WAIT_MS) {
                Ok(tasks) => json!({"ok": true, "tasks": tasks}),
                Err(e) => error(format!("the pipeline did not answer: {e}")),
            },
            None => error(NO_PIPELINE.into()),
        },
        Request::Task { id } => match desk() {
            Some(desk) => match ractor::call_t!(desk, DeskMsg::Get, DESK_WAIT_MS, id) {
                Ok(Some(task)) => json!({"ok": true, "task": task}),
                Ok(None) => error(format!("no task #{id}")),
                Err(e) => error(format!("the pipeline did not answer: {e}")),
            },
            None => error(NO_PIPELINE.into()),
        },
        Request::TaskAdd {
            repo,
            title,
            description,
        } => match create_task(repo, title, description, "cli".into()).await {
            Ok(task) => json!({"ok": true, "task": task}),
            Err(why) => error(why.to_string()),
        },
        Request::Release { repo } => match actors::pipeline::train::release_now(repo).await {
            Ok((repo, train)) => json!({"ok": true, "repo": repo, "train": train}),
            Err(why) => error(why),
        },
        Request::SelfUpdate => match crate::self_update::trigger_head().await {
            Ok(commit) => json!({"ok": true, "commit": commit}),
            Err(why) => error(why),
        },
        Request::Backup { path, .. } if path.is_relative() => error(format!(
            "backup path {} is relative; give an absolute path",
            path.display()
        )),
        Request::Backup { path, force } => {
            match args.store.backup_to(&path, force, Box::new(|_| {})).await {
                Ok(summary) => json!({"ok": true, "backup": summary}),
                Err(why) => error(why.to_string()),
            }
        }
    }
}

const NO_PIPELINE: &str = "the pipeline is not running (set PIPELINE_REPO to a git repository)";
