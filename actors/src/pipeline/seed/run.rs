//! One seeding run, outside the seeder's mailbox: the agent reads the repository in a scratch
//! worktree, its answer is checked, and the proposals that are new and fit under the cap
//! become tasks through the desk.
//!
//! The agent has Bash, so "read-only" is its instruction, not a sandbox: it works in a scratch
//! worktree (`<repo>/.worktrees/seed`, detached at `main`) that is reset before and removed
//! after every run, so whatever it might change reaches no branch.

use std::sync::Arc;

use super::format::{self, Mode, Proposal, similar};
use super::{MAX_OPEN, SeedDeps, tasks_of};
use crate::agent::{AgentProgress, AgentRequest};
use crate::pipeline::desk::{DeskMsg, desk};

use crate::pipeline::repo::TaskSummary;

/// The scratch worktree's name.
const SCRATCH: &str = "seed";
/// How many existing titles the prompt lists (the newest).
const PROMPT_TITLES: usize = 100;
/// Longer than the desk takes to record a task and start its actor.
const CREATE_TIMEOUT_MS: u64 = 65_000;
pub const TOOLS: [&str; 4] = ["Read", "Glob", "Grep", "Bash"];

/// How a run went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub mode: Mode,
    /// Titles of the tasks created.
    pub created: Vec<String>,
    /// Proposals dropped as similar to a known task or to an earlier proposal.
    pub similar: usize,
    /// Proposals dropped because the repository had [`MAX_OPEN`] unfinished tasks.
    pub over_cap: usize,
    /// Why the run created nothing or less than it should have.
    pub error: Option<String>,
}

impl RunReport {
    pub fn failed(mode: Mode, why: impl Into<String>) -> Self {
        Self {
            mode,
            created: Vec::new(),
            similar: 0,
            over_cap: 0,
            error: Some(why.into()),
        }
    }
}

use crate::pipeline::ports::git;

/// One run in `mode`; `tasks` is the repository's list when the run began, `recent` the
/// titles the seeder created lately.
pub async fn run(
    deps: Arc<SeedDeps>,
    mode: Mode,
    tasks: Vec<TaskSummary>,
    recent: Vec<String>,
) -> RunReport {
    let mut listed: Vec<&TaskSummary> = tasks.iter().collect();
    listed.sort_by_key(|t| std::cmp::Reverse(t.id));
    let mut existing: Vec<String> = listed
        .iter()
        .take(PROMPT_TITLES)
        .map(|t| t.title.clone())
        .collect();
    for title in &recent {
        if !existing.contains(title) {
            existing.push(title.clone());
        }
    }
    let text = match answer(&deps, mode, &existing).await {
        Ok(text) => text,
        Err(why) => return RunReport::failed(mode, why),
    };
    let proposals = match format::parse(&text) {
        Ok(proposals) => proposals,
        Err(why) => {
            return RunReport::failed(mode, format!("malformed answer, nothing created: {why}"));
        }
    };
    // Asked again: tasks may have been created while the agent worked.
    let Some(tasks) = tasks_of(&deps.repo).await else {
        return RunReport::failed(mode, "the repository actor did not answer");
    };
    let open = tasks.iter().filter(|t| !t.status.is_terminal()).count();
    let mut known: Vec<String> = tasks.into_iter().map(|t| t.title).collect();
    known.extend(recent);
    let (picked, similar, over_cap) = pick(proposals, &known, MAX_OPEN.saturating_sub(open));
    let mut report = RunReport {
        mode,
        created: Vec::new(),
        similar,
        over_cap,
        error: None,
    };
    for proposal in picked {
        match create(&deps.repo, mode, &proposal).await {
            Ok(task) => report.created.push(task.title),
            Err(e) => {
                report.error = Some(format!("could not create {:?}: {e}", proposal.title));
                break;
            }
        }
    }
    report
}

/// The agent's answer, from a scratch worktree at `main` holding an agent slot.
async fn answer(deps: &SeedDeps, mode: Mode, existing: &[String]) -> Result<String, String> {
    let workdir = git(&deps.vcs, |v| {
        let main = v.main_head()?;
        v.scratch(SCRATCH, None, &main)
    })
    .await
    .map_err(|e| format!("could not make the scratch worktree: {e}"))?;
    let owner = format!("seed-{}", deps.repo);
    let s = &deps.pipeline;
    let request = AgentRequest {
        owner: owner.clone(),
        prompt: format::prompt(mode, existing),
        model: s.model.clone(),
        resume: None,
        home: s.sessions_dir.join(&owner).join("home"),
        workdir,
        allowed_tools: TOOLS.iter().map(|t| t.to_string()).collect(),
        system_prompt: Some(format::SYSTEM_PROMPT.to_owned()),
        max_turns: s.max_turns,
        idle_timeout: s.idle_timeout,
        hard_timeout: s.hard_timeout,
    };
    let repo = deps.repo.clone();
    let progress = Box::new(move |p: AgentProgress| {
        if let AgentProgress::ToolUse { summary, .. } = p {
            tracing::debug!(%repo, "seeding: {summary}");
        }
    });
    let outcome = match crate::slots::acquire(&deps.slots, owner).await {
        Some(_slot) => Ok(deps.runner.run(request, progress).await),
        None => Err("the agent slots are not running".to_owned()),
    };
    if let Err(e) = git(&deps.vcs, |v| v.drop_scratch(SCRATCH, None)).await {
        tracing::warn!(repo = %deps.repo, "could not remove the seeding worktree: {e}");
    }
    let outcome = outcome?;
    match outcome.error {
        Some(e) => Err(format!("the seeding agent failed: {e}")),
        None => Ok(outcome.text),
    }
}

/// The proposals to create, in order: none similar to a `known` title or to an earlier
/// proposal, at most `room`. Also how many were dropped as similar, and over the cap.
fn pick(proposals: Vec<Proposal>, known: &[String], room: usize) -> (Vec<Proposal>, usize, usize) {
    let mut picked: Vec<Proposal> = Vec::new();
    let (mut similar_count, mut over_cap) = (0, 0);
    for p in proposals {
        let seen = known.iter().map(String::as_str);
        if seen
            .chain(picked.iter().map(|q| q.title.as_str()))
            .any(|t| similar(t, &p.title))
        {
            similar_count += 1;
        } else if picked.len() < room {
            picked.push(p);
        } else {
            over_cap += 1;
        }
    }
    (picked, similar_count, over_cap)
}

async fn create(repo: &str, mode: Mode, p: &Proposal) -> Result<TaskSummary, String> {
    let desk = desk().ok_or("the pipeline desk is not running")?;
    let description = format!(
        "{}\n\nProposed by auto-seeding (mode: {mode}).",
        p.description
    );
    ractor::call_t!(
        desk,
        |reply| DeskMsg::Create {
            repo: Some(repo.to_owned()),
            title: p.title.clone(),
            description,
            origin: None,
            request: None,
            requested_by: format!("seed:{mode}"),
            reply,
        },
        CREATE_TIMEOUT_MS
    )
    .map_err(|e| format!("the desk did not answer: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(title: &str) -> Proposal {
        Proposal {
            title: title.into(),
            description: "twenty characters at least".into(),
        }
    }

    fn titles(picked: &[Proposal]) -> Vec<&str> {
        picked.iter().map(|p| p.title.as_str()).collect()
    }

    #[test]
    fn pick_drops_known_and_repeated_titles_then_caps() {
        let known = vec!["Add tests for the parser".to_owned()];
        let proposals = vec![
            p("Add parser tests"),
            p("Remove dead code in slots"),
            p("Remove the dead code in slots"),
            p("Fix the race in release"),
            p("Rename the helper module"),
        ];
        let (picked, similar, over_cap) = pick(proposals, &known, 2);
        assert_eq!(
            titles(&picked),
            ["Remove dead code in slots", "Fix the race in release"]
        );
        assert_eq!((similar, over_cap), (2, 1));
    }

    #[test]
    fn pick_with_no_room_creates_nothing() {
        let (picked, similar, over_cap) = pick(vec![p("Fix the race in release")], &[], 0);
        assert!(picked.is_empty());
        assert_eq!((similar, over_cap), (0, 1));
    }
}
