//! One chat run in flight: the agent working, with a typing indicator and one status message
//! that is edited as the agent uses tools (never a flood of messages).
//!
//! It runs as a task beside the group actor so the group keeps taking in messages; the result
//! comes back to the group as a message. The slot guard lives in the task, so the slot is
//! released however the task ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;
use tokio::sync::mpsc;

use super::GroupMsg;
use crate::agent::{AgentProgress, AgentRequest, AgentRunner, ProgressSink};
use crate::chat::port::{ChatId, ChatTransport, Format};
use crate::slots::SlotGuard;

/// How often "typing…" is renewed (platforms show it for about 5 s).
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// At most one edit of the status message this often (platforms rate-limit edits).
const EDIT_EVERY: Duration = Duration::from_secs(2);

/// Everything a run needs, moved into its task.
pub struct RunJob {
    pub run: u64,
    pub chat: ChatId,
    pub request: AgentRequest,
    pub transport: Arc<dyn ChatTransport>,
    pub runner: Arc<dyn AgentRunner>,
    pub group: ActorRef<GroupMsg>,
    pub slot: SlotGuard,
}

/// Runs the agent and reports the outcome to the group.
pub async fn run(job: RunJob) {
    let RunJob {
        run,
        chat,
        request,
        transport,
        runner,
        group,
        slot,
    } = job;
    let (tx, mut progress) = mpsc::unbounded_channel();
    let sink: ProgressSink = Box::new(move |p| {
        let _ = tx.send(p);
    });
    let run_started = Instant::now();
    let agent = runner.run(request, sink);
    tokio::pin!(agent);
    let mut typing = tokio::time::interval(TYPING_EVERY);
    let mut status: Option<String> = None;
    let mut last_edit = Instant::now();
    let mut steps = 0u32;
    let outcome = loop {
        tokio::select! {
            outcome = &mut agent => break outcome,
            _ = typing.tick() => {
                // Cosmetic: a failed typing indicator must not fail the run.
                let _ = transport.typing(&chat).await;
            }
            Some(event) = progress.recv() => {
                if let AgentProgress::ToolUse { summary, .. } = event {
                    steps += 1;
                    let text = format!("⏳ Working… step {steps}: {summary}");
                    match &status {
                        None => {
                            status = transport.send(&chat, &text, Format::Plain, None).await.ok();
                            last_edit = Instant::now();
                        }
                        Some(id) if last_edit.elapsed() >= EDIT_EVERY => {
                            let _ = transport.edit(&chat, id, &text).await;
                            last_edit = Instant::now();
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    };
    crate::metrics::chat_run(run_started.elapsed(), &outcome);
    if let Some(id) = &status {
        let done = if outcome.error.is_none() {
            format!("✅ Done in {steps} steps.")
        } else {
            format!("⚠️ Stopped after {steps} steps.")
        };
        let _ = transport.edit(&chat, id, &done).await;
    }
    drop(slot);
    // If the group is gone (unregistered, stopping), the outcome has nobody to go to; its
    // record stays in the snapshot and is run again when the group comes back.
    let _ = group.cast(GroupMsg::RunFinished { run, outcome });
}
