//! The pipeline desk (`borg:pipeline`): where tasks are created and listed. It hands out task
//! ids (durably, key `pipeline/desk`), checks the repository exists, and passes the task to
//! its repository actor; lists and lookups ask every repository.
//!
//! A request that can come twice (a chat's `/task`, which the platform delivers again when
//! borg was killed before it noted the message as handled) carries a key; the desk saves
//! each recent key with the id it gave it, so the same request again gets the same task
//! (created then if the first attempt never reached its repository), never a second.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use supervisors::ActorStats;
use supervisors::snapshot::{
    Persister, Snapshot, SnapshotError, SnapshotStore, decode, decode_payload,
};

use crate::pipeline::repo::{RepoMsg, TaskSummary, repo_actor_name};
use crate::pipeline::task::state::{NewTask, TaskSnapshot};
use crate::pipeline::task::{TaskMsg, store_key as task_store_key};

/// The desk's registered name.
pub const DESK_NAME: &str = "borg:pipeline";
pub const STORE_KEY: &str = "pipeline/desk";

/// The running desk, found by its registered name (it may have restarted).
pub fn desk() -> Option<ActorRef<DeskMsg>> {
    ractor::registry::where_is(DESK_NAME).map(ActorRef::from)
}

/// Why [`create_task`] made no task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// No desk is registered: the pipeline is not running.
    NotRunning,
    /// The desk refused the task; the text names the problem (no title, unknown repository).
    Refused(String),
    /// The desk did not answer in time, or stopped while asked; the text is the call's error.
    NoAnswer(String),
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRunning => {
                f.write_str("the pipeline is not running (set PIPELINE_REPO to a git repository)")
            }
            Self::Refused(why) => f.write_str(why),
            Self::NoAnswer(e) => write!(f, "the pipeline did not answer: {e}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// Longer than the desk's own wait on a repository creating a task.
const CREATE_WAIT_MS: u64 = CREATE_TIMEOUT_MS + 10_000;

/// Creates a task through the running desk (with no origin), for the dashboard and the
/// control socket.
pub async fn create_task(
    repo: Option<String>,
    title: String,
    description: String,
    requested_by: String,
) -> Result<TaskSummary, CreateError> {
    let desk = desk().ok_or(CreateError::NotRunning)?;
    ractor::call_t!(
        desk,
        |reply| DeskMsg::Create {
            repo,
            title,
            description,
            origin: None,
            request: None,
            requested_by,
            reply,
        },
        CREATE_WAIT_MS
    )
    .map_err(|e| CreateError::NoAnswer(e.to_string()))?
    .map_err(CreateError::Refused)
}

/// How many request keys the desk remembers (far more than a platform ever redelivers).
const REQUESTS_KEPT: usize = 1_000;

/// The desk's durable state (format version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskSnapshot {
    pub next_id: u64,
    /// The newest requests' keys and the task ids they got, oldest first.
    pub requests: Vec<(String, u64)>,
}

/// Format version 1, frozen: before requests had keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DeskSnapshotV1 {
    next_id: u64,
}

impl Snapshot for DeskSnapshotV1 {
    const VERSION: u16 = 1;
}

impl Snapshot for DeskSnapshot {
    const VERSION: u16 = 2;

    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
        match version {
            1 => {
                let old: DeskSnapshotV1 = decode_payload(payload)?;
                Ok(DeskSnapshot {
                    next_id: old.next_id,
                    requests: Vec::new(),
                })
            }
            v => Err(SnapshotError::UnknownVersion(v)),
        }
    }
}

pub enum DeskMsg {
    /// `repo: None` means the primary repository.
    Create {
        repo: Option<String>,
        title: String,
        description: String,
        origin: Option<String>,
        /// Identifies a request that may come twice (`tg:-100/57`: a chat message).
        request: Option<String>,
        requested_by: String,
        reply: RpcReplyPort<Result<TaskSummary, String>>,
    },
    List(RpcReplyPort<Vec<TaskSummary>>),
    Get(u64, RpcReplyPort<Option<TaskSnapshot>>),
    Cancel(u64, String, RpcReplyPort<Result<(), String>>),
    /// The repository names, the primary first.
    Repos(RpcReplyPort<Vec<String>>),
}

pub struct DeskArgs {
    /// The primary repository first.
    pub repos: Vec<String>,
    pub store: Arc<dyn SnapshotStore>,
    pub stats: Option<Arc<ActorStats>>,
}

pub struct Desk;

pub struct DeskState {
    repos: Vec<String>,
    store: Arc<dyn SnapshotStore>,
    persister: Persister<DeskSnapshot>,
    snap: DeskSnapshot,
}

impl Actor for Desk {
    type Msg = DeskMsg;
    type State = DeskState;
    type Arguments = DeskArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<DeskMsg>,
        args: DeskArgs,
    ) -> Result<DeskState, ActorProcessingErr> {
        let (persister, restored) =
            Persister::restore(args.store.clone(), STORE_KEY, args.stats).await?;
        Ok(DeskState {
            repos: args.repos,
            store: args.store,
            persister,
            snap: restored.unwrap_or(DeskSnapshot {
                next_id: 1,
                requests: Vec::new(),
            }),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<DeskMsg>,
        msg: DeskMsg,
        state: &mut DeskState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DeskMsg::Create {
                repo,
                title,
                description,
                origin,
                request,
                requested_by,
                reply,
            } => {
                let new = NewTask {
                    repo: repo.unwrap_or_default(),
                    title: title.trim().to_owned(),
                    description: description.trim().to_owned(),
                    origin,
                    requested_by,
                };
                let _ = reply.send(state.create(new, request).await);
            }
            DeskMsg::List(reply) => {
                let mut all = Vec::new();
                for repo in state.repo_refs() {
                    if let Ok(list) = ractor::call_t!(repo, RepoMsg::List, ASK_TIMEOUT_MS) {
                        all.extend(list);
                    }
                }
                all.sort_by_key(|t| t.id);
                let _ = reply.send(all);
            }
            DeskMsg::Get(id, reply) => {
                let task = match find_task(state, id).await {
                    Some(task) => ractor::call_t!(task, TaskMsg::Get, ASK_TIMEOUT_MS).ok(),
                    // Finished tasks have no actor after a restart; their snapshot remains.
                    None => state.stored_task(id).await,
                };
                let _ = reply.send(task);
            }
            DeskMsg::Cancel(id, why, reply) => {
                let result = match find_task(state, id).await {
                    Some(task) => ractor::call_t!(task, TaskMsg::Cancel, ASK_TIMEOUT_MS, why)
                        .unwrap_or_else(|e| Err(format!("task #{id} did not answer: {e}"))),
                    None => Err(format!("no running task #{id}")),
                };
                let _ = reply.send(result);
            }
            DeskMsg::Repos(reply) => {
                let _ = reply.send(state.repos.clone());
            }
        }
        Ok(())
    }
}

const ASK_TIMEOUT_MS: u64 = 5_000;
const CREATE_TIMEOUT_MS: u64 = 60_000;

async fn find_task(state: &DeskState, id: u64) -> Option<ActorRef<TaskMsg>> {
    for repo in state.repo_refs() {
        if let Ok(Some(task)) = ractor::call_t!(repo, RepoMsg::Task, ASK_TIMEOUT_MS, id) {
            return Some(task);
        }
    }
    None
}

impl DeskState {
    async fn stored_task(&self, id: u64) -> Option<TaskSnapshot> {
        let stored = self.store.load(&task_store_key(id)).await.ok()??;
        match decode(&stored.bytes) {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::error!(task = id, "task snapshot does not decode: {e}");
                None
            }
        }
    }

    fn repo_refs(&self) -> Vec<ActorRef<RepoMsg>> {
        self.repos
            .iter()
            .filter_map(|r| ractor::registry::where_is(repo_actor_name(r)))
            .map(ActorRef::from)
            .collect()
    }

    async fn create(
        &mut self,
        mut new: NewTask,
        request: Option<String>,
    ) -> Result<TaskSummary, String> {
        if new.title.is_empty() {
            return Err("a task needs a title".into());
        }
        if new.title.chars().count() > 200 {
            return Err(
                "the title is longer than 200 characters; put details in the description".into(),
            );
        }
        if new.repo.is_empty() {
            new.repo = self
                .repos
                .first()
                .cloned()
                .ok_or("no repository is configured (set PIPELINE_REPO)")?;
        }
        if !self.repos.contains(&new.repo) {
            return Err(format!(
                "no repository named {:?}; known: {}",
                new.repo,
                self.repos.join(", ")
            ));
        }
        let repo: ActorRef<RepoMsg> = ractor::registry::where_is(repo_actor_name(&new.repo))
            .ok_or_else(|| format!("repository {} is not running right now", new.repo))?
            .into();
        let known = request
            .as_ref()
            .and_then(|key| self.snap.requests.iter().find(|(k, _)| k == key))
            .map(|&(_, id)| id);
        let id = match known {
            // The same request again: the repository creates the task if it never got it,
            // and otherwise answers the one it has.
            Some(id) => id,
            None => {
                let mut next = self.snap.clone();
                let id = next.next_id;
                next.next_id += 1;
                if let Some(key) = request {
                    next.requests.push((key, id));
                    let over = next.requests.len().saturating_sub(REQUESTS_KEPT);
                    next.requests.drain(..over);
                }
                // The id is spent durably first: a crash cannot hand it out twice.
                self.persister
                    .save(&next)
                    .await
                    .map_err(|e| format!("could not record the task: {e}"))?;
                self.snap = next;
                id
            }
        };
        // Longer than the repository takes to record the task and start its actor, so a
        // slow start is not reported as a failure (and retried into a duplicate).
        ractor::call_t!(
            repo,
            |reply| RepoMsg::Create { id, new, reply },
            CREATE_TIMEOUT_MS
        )
        .map_err(|e| format!("the repository did not answer: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_errors_say_what_went_wrong() {
        assert_eq!(
            CreateError::NotRunning.to_string(),
            "the pipeline is not running (set PIPELINE_REPO to a git repository)"
        );
        assert_eq!(
            CreateError::Refused("a task needs a title".into()).to_string(),
            "a task needs a title"
        );
        assert_eq!(
            CreateError::NoAnswer("timeout".into()).to_string(),
            "the pipeline did not answer: timeout"
        );
        assert_eq!(CREATE_WAIT_MS, 70_000);
    }

    #[test]
    fn desk_snapshot_golden_bytes_v1_and_v2() {
        // Frozen: changing these means a new version and an upgrade path.
        let v1 = supervisors::snapshot::encode(&DeskSnapshotV1 { next_id: 7 });
        assert_eq!(v1[4..], [1, 0, 7]);
        let up: DeskSnapshot = decode(&[b'B', b'S', b'N', b'P', 1, 0, 7]).unwrap();
        assert_eq!(up.next_id, 7);
        assert!(up.requests.is_empty());
        let v2 = DeskSnapshot {
            next_id: 8,
            requests: vec![("tg:1/2".into(), 7)],
        };
        let bytes = supervisors::snapshot::encode(&v2);
        assert_eq!(
            bytes,
            [
                b'B', b'S', b'N', b'P', 2, 0, 8, 1, 6, b't', b'g', b':', b'1', b'/', b'2', 7
            ]
        );
        assert_eq!(decode::<DeskSnapshot>(&bytes).unwrap(), v2);
    }

    #[tokio::test]
    async fn create_task_without_a_desk_is_not_running() {
        assert!(desk().is_none());
        let created = create_task(None, "t".into(), String::new(), "test".into()).await;
        assert_eq!(created, Err(CreateError::NotRunning));
    }
}
