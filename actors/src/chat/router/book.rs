//! What the chat router persists: registered chats and known admins. The task fields are
//! from before the pipeline existed (tasks now live in the pipeline's own actors); they stay
//! so that format 1 still reads, and are no longer written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use supervisors::snapshot::Snapshot;

use crate::chat::port::ChatId;

/// A task created with `/task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEntry {
    pub id: u64,
    pub title: String,
    pub description: String,
    /// The chat that created it; phase changes are reported there.
    pub created_in: ChatId,
    pub created_by: String,
    pub at_ms: u64,
    pub status: TaskStatus,
}

/// Where a task stands, as chat shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Backlog,
    Running,
    Done,
    Failed,
}

impl TaskStatus {
    /// The original borg's icons: `~` in progress, `+` done, `x` failed.
    pub fn icon(self) -> char {
        match self {
            TaskStatus::Backlog | TaskStatus::Running => '~',
            TaskStatus::Done => '+',
            TaskStatus::Failed => 'x',
        }
    }
}

/// The router's persisted state (format version 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterBook {
    /// Registered chats and their titles.
    pub registered: BTreeMap<ChatId, String>,
    /// User ids seen in the admin chat: members of `PIPELINE_ADMIN_CHAT` are admins everywhere.
    pub admins: BTreeSet<String>,
    pub tasks: Vec<TaskEntry>,
    pub next_task: u64,
}

impl Snapshot for RouterBook {
    const VERSION: u16 = 1;
}

impl RouterBook {
    /// Adds a backlog task and returns its id.
    pub fn add_task(
        &mut self,
        title: String,
        description: String,
        chat: ChatId,
        by: String,
        at_ms: u64,
    ) -> u64 {
        self.next_task += 1;
        let id = self.next_task;
        self.tasks.push(TaskEntry {
            id,
            title,
            description,
            created_in: chat,
            created_by: by,
            at_ms,
            status: TaskStatus::Backlog,
        });
        id
    }

    /// The `n` newest tasks, newest first.
    pub fn recent_tasks(&self, n: usize) -> impl Iterator<Item = &TaskEntry> {
        self.tasks.iter().rev().take(n)
    }
}
