//! The router's answers to chat commands.

use std::time::Duration;

use ractor::ActorProcessingErr;
use supervisors::BreakerState;

use super::{RouterState, group_child_id};
use crate::chat::command::{Command, help};
use crate::chat::group::{GroupMsg, store_key};
use crate::chat::port::IncomingMessage;
use crate::pipeline::desk::{DeskMsg, desk};
use crate::pipeline::phase::Status;
use crate::pipeline::task::state::TaskSummary;
use crate::pipeline::train::release_now;

/// How long `/groups` waits for each group's status before showing it as busy.
const STATUS_WAIT: Duration = Duration::from_millis(500);

impl RouterState {
    pub(super) async fn command(
        &mut self,
        msg: IncomingMessage,
        command: Command,
    ) -> Result<(), ActorProcessingErr> {
        let registered = self.book.registered.contains_key(&msg.chat);
        if !registered && !command.allowed_unregistered() {
            return Ok(());
        }
        if command.admin_only() && !self.is_admin(&msg) {
            let text = "Only admins can do that. Admins are listed in BORG_ADMIN_USERS or are members of the admin chat.";
            self.reply(&msg, text).await;
            return Ok(());
        }
        let answer = match command {
            // A store that cannot write (a full disk) is the user's to fix, not a crash.
            Command::Register => self.register(&msg).await.unwrap_or_else(not_saved),
            Command::Unregister => self.unregister(&msg).await.unwrap_or_else(not_saved),
            Command::Status => self.status().await,
            Command::Version => format!("borg {}", self.args.settings.version),
            Command::Groups => self.groups().await,
            Command::Task { title, description } => {
                if title.is_empty() {
                    "Usage: /task <title>, with the description on the next lines.".to_owned()
                } else {
                    self.create_task(&msg, title, description).await
                }
            }
            Command::Tasks => self.tasks().await,
            Command::Pipeline => self.pipeline().await,
            Command::Release { repo } => release(repo).await,
            Command::ChatId => format!("This chat's id: {}", msg.chat),
            Command::Ping => "Borg online.".to_owned(),
            Command::Help | Command::Unknown(_) => {
                help(&self.args.group_deps.settings.assistant_name)
            }
        };
        self.reply(&msg, &answer).await;
        Ok(())
    }

    async fn register(&mut self, msg: &IncomingMessage) -> Result<String, ActorProcessingErr> {
        if self.book.registered.contains_key(&msg.chat) {
            return Ok("This chat is already registered.".to_owned());
        }
        if self.transport(&msg.chat).is_none() {
            return Ok("This platform is not connected.".to_owned());
        }
        self.book
            .registered
            .insert(msg.chat.clone(), msg.chat_title.clone());
        if let Err(e) = self.save().await {
            self.book.registered.remove(&msg.chat);
            return Err(e);
        }
        self.start_group(&msg.chat, &msg.chat_title).await;
        let name = &self.args.group_deps.settings.assistant_name;
        Ok(format!(
            "Registered \"{}\". Mention @{name} to talk to me.",
            msg.chat_title
        ))
    }

    async fn unregister(&mut self, msg: &IncomingMessage) -> Result<String, ActorProcessingErr> {
        let id = group_child_id(&msg.chat);
        if let Ok(Some(cell)) = self.args.groups.child(&id).await {
            let group: ractor::ActorRef<GroupMsg> = cell.into();
            match ractor::call_t!(group, GroupMsg::PrepareRetire, 5_000) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Ok(format!("Not now: {why}.")),
                Err(e) => return Ok(format!("Not now: the chat's actor did not answer ({e}).")),
            }
        }
        let _ = self.args.groups.terminate_child(&id).await;
        let _ = self.args.groups.delete_child(&id).await;
        self.groups.remove(&msg.chat);
        let Some(title) = self.book.registered.remove(&msg.chat) else {
            return Ok("This chat is not registered.".to_owned());
        };
        if let Err(e) = self.forget(msg).await {
            // Still registered: the group comes back (its state, if already forgotten, fresh).
            self.book.registered.insert(msg.chat.clone(), title.clone());
            self.start_group(&msg.chat, &title).await;
            return Err(e);
        }
        Ok("Unregistered. I will not answer here any more.".to_owned())
    }

    /// Forgets a retired group's state and its registration, durably.
    async fn forget(&mut self, msg: &IncomingMessage) -> Result<(), ActorProcessingErr> {
        // Claiming fences out any late write of the old group; then its state is forgotten.
        let key = store_key(&msg.chat);
        let claim = self.args.store.claim(&key).await?;
        self.args.store.remove(&key, claim.incarnation).await?;
        self.save().await
    }

    async fn status(&self) -> String {
        let s = &self.args.settings;
        let slots = &self.args.group_deps.slots;
        let agents = match ractor::call_t!(slots, crate::slots::SlotsMsg::Usage, 1_000) {
            Ok(usage) => format!("{} of {}", usage.running.len(), usage.limit),
            Err(_) => "unknown".to_owned(),
        };
        let tripped: Vec<String> = self
            .args
            .introspection
            .list()
            .into_iter()
            .filter(|a| a.breaker.is_some_and(|b| b != BreakerState::Closed))
            .map(|a| format!("{} ({:?})", a.path, a.breaker.unwrap_or(BreakerState::Open)))
            .collect();
        format!(
            "borg {}\nUp {} s\nGroups: {} registered\nAgents running: {}\nModel: {}\nSandbox: {}\nBreakers open: {}",
            s.version,
            s.started.elapsed().as_secs(),
            self.book.registered.len(),
            agents,
            self.args.group_deps.settings.model,
            s.sandbox,
            if tripped.is_empty() {
                "none".to_owned()
            } else {
                tripped.join(", ")
            }
        )
    }

    async fn groups(&self) -> String {
        if self.book.registered.is_empty() {
            return "No chats are registered.".to_owned();
        }
        let mut out = String::from("Registered chats:");
        for (chat, title) in &self.book.registered {
            let phase = match self.groups.get(chat) {
                Some(group) => {
                    match ractor::call_t!(group, GroupMsg::Status, STATUS_WAIT.as_millis() as u64) {
                        Ok(status) => format!("{:?}", status.phase).to_lowercase(),
                        Err(_) => "busy".to_owned(),
                    }
                }
                None => "not running".to_owned(),
            };
            out.push_str(&format!("\n{title} ({chat}): {phase}"));
        }
        out
    }

    async fn create_task(
        &self,
        msg: &IncomingMessage,
        title: String,
        description: String,
    ) -> String {
        let Some(desk) = desk() else {
            return NO_PIPELINE.to_owned();
        };
        let (repo, title) = split_repo(&title);
        let created = ractor::call_t!(
            desk,
            |reply| DeskMsg::Create {
                repo,
                title,
                description,
                origin: Some(msg.chat.0.clone()),
                // A redelivered `/task` gets the task the first delivery made.
                request: Some(format!("{}/{}", msg.chat, msg.message_id)),
                requested_by: msg.sender_id.clone(),
                reply,
            },
            DESK_WAIT_MS
        );
        match created {
            Ok(Ok(task)) => format!(
                "Task #{} created in {}: {}. Phase changes will be reported here.",
                task.id, task.repo, task.title
            ),
            Ok(Err(why)) => format!("The task was not created: {why}."),
            Err(e) => format!(
                "The pipeline did not answer in time ({e}); the task may still have been \
                 created, so check /tasks before asking again."
            ),
        }
    }

    async fn task_list(&self) -> Result<Vec<TaskSummary>, String> {
        let desk = desk().ok_or(NO_PIPELINE)?;
        ractor::call_t!(desk, DeskMsg::List, DESK_WAIT_MS)
            .map_err(|e| format!("The pipeline did not answer: {e}."))
    }

    async fn tasks(&self) -> String {
        let tasks = match self.task_list().await {
            Ok(tasks) => tasks,
            Err(why) => return why,
        };
        if tasks.is_empty() {
            return "No tasks yet. Create one with /task <title>.".to_owned();
        }
        let mut out = String::from("Recent tasks:");
        for task in tasks.iter().rev().take(20) {
            out.push_str(&format!(
                "\n{} #{} {} [{}]: {}",
                icon(task.status),
                task.id,
                task.title,
                task.repo,
                task.status
            ));
        }
        out
    }

    /// Per repository: how many tasks are in each status.
    async fn pipeline(&self) -> String {
        let tasks = match self.task_list().await {
            Ok(tasks) => tasks,
            Err(why) => return format!("{}\n{why}", self.args.settings.pipeline_summary),
        };
        let mut out = self.args.settings.pipeline_summary.clone();
        let mut repos: Vec<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
        repos.dedup();
        for repo in repos {
            let counts: Vec<String> = Status::ALL
                .iter()
                .filter_map(|s| {
                    let n = tasks
                        .iter()
                        .filter(|t| t.repo == repo && t.status == *s)
                        .count();
                    (n > 0).then(|| format!("{s} {n}"))
                })
                .collect();
            out.push_str(&format!("\n{repo}: {}", counts.join(", ")));
        }
        out
    }
}

/// The answer when a command's change could not be saved.
fn not_saved(e: ActorProcessingErr) -> String {
    tracing::warn!("a chat command's change was not saved: {e}");
    format!("That could not be saved ({e}); nothing changed. Is DATA_DIR full?")
}

/// Starts repository `repo`'s release train (the primary repository's by default).
async fn release(repo: Option<String>) -> String {
    match release_now(repo).await {
        Ok((repo, n)) => {
            format!("Release #{n} of {repo} started; the digest follows when it is done.")
        }
        Err(why) => {
            let mut chars = why.chars();
            let first: String = chars
                .next()
                .into_iter()
                .flat_map(char::to_uppercase)
                .collect();
            format!("{first}{}.", chars.as_str())
        }
    }
}

/// `/task repo:NAME title` picks a repository; without the prefix, the primary one.
fn split_repo(title: &str) -> (Option<String>, String) {
    match title
        .strip_prefix("repo:")
        .and_then(|rest| rest.split_once(' '))
    {
        Some((repo, rest)) if !repo.is_empty() => (Some(repo.to_owned()), rest.trim().to_owned()),
        _ => (None, title.to_owned()),
    }
}

const NO_PIPELINE: &str =
    "The pipeline is not running (set PIPELINE_REPO to a git repository to start it).";
const DESK_WAIT_MS: u64 = 5_000;

/// The original borg's icons (`~` in progress, `x` failed, `!` blocked), with `=` for done and
/// waiting for a release and `+` for merged.
fn icon(status: Status) -> char {
    match status {
        Status::Done => '=',
        Status::Failed => 'x',
        Status::Blocked => '!',
        Status::Merged => '+',
        _ => '~',
    }
}

#[cfg(test)]
mod tests {
    use super::split_repo;

    #[test]
    fn a_repo_prefix_picks_the_repository() {
        assert_eq!(
            split_repo("repo:web Fix the login"),
            (Some("web".into()), "Fix the login".into())
        );
        assert_eq!(split_repo("Fix repo:web"), (None, "Fix repo:web".into()));
        assert_eq!(split_repo("repo: x"), (None, "repo: x".into()));
    }
}
