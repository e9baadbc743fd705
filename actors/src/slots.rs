//! Agent slots: the one global limit on agents running at once (`MAX_CONCURRENT_AGENTS`),
//! shared by chat groups and pipeline tasks.
//!
//! Requests wait in one FIFO queue, so whoever asked first runs first, chat or pipeline alike.
//! A granted slot is a [`SlotGuard`]: dropping it — when the run ends, fails, panics or its
//! task is aborted — gives the slot back, so a slot cannot leak with its holder.

use std::collections::VecDeque;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

/// Requests to the slots actor.
pub enum SlotsMsg {
    /// Wait for a free slot; `who` names the requester for `/status` and the dashboard.
    Acquire(String, RpcReplyPort<SlotGuard>),
    /// A guard was dropped.
    Release(u64),
    /// How many are running and waiting.
    Usage(RpcReplyPort<SlotUsage>),
}

/// A snapshot of the limit's use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotUsage {
    pub limit: usize,
    /// Who holds a slot now.
    pub running: Vec<String>,
    pub waiting: usize,
}

/// A held slot; dropping it releases the slot.
pub struct SlotGuard {
    id: u64,
    slots: ActorRef<SlotsMsg>,
}

impl std::fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotGuard({})", self.id)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        // If the slots actor is gone, so is the limit it kept: nothing to give back.
        let _ = self.slots.cast(SlotsMsg::Release(self.id));
    }
}

/// The slots actor.
pub struct AgentSlots;

pub struct SlotsState {
    limit: usize,
    next_id: u64,
    running: Vec<(u64, String)>,
    waiting: VecDeque<(String, RpcReplyPort<SlotGuard>)>,
}

impl SlotsState {
    /// Grants slots to waiters while any are free. A waiter that stopped waiting (its reply
    /// port is closed) is skipped and its slot goes to the next one.
    fn grant(&mut self, myself: &ActorRef<SlotsMsg>) {
        while self.running.len() < self.limit {
            let Some((who, reply)) = self.waiting.pop_front() else {
                return;
            };
            if reply.is_closed() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.running.push((id, who));
            let guard = SlotGuard {
                id,
                slots: myself.clone(),
            };
            // If the requester left after the check, the guard comes back inside the error
            // and releases the slot as it is dropped here.
            let _ = reply.send(guard);
        }
    }
}

impl Actor for AgentSlots {
    type Msg = SlotsMsg;
    type State = SlotsState;
    /// The limit; at least one.
    type Arguments = usize;

    async fn pre_start(
        &self,
        _myself: ActorRef<SlotsMsg>,
        limit: usize,
    ) -> Result<SlotsState, ActorProcessingErr> {
        Ok(SlotsState {
            limit: limit.max(1),
            next_id: 1,
            running: Vec::new(),
            waiting: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SlotsMsg>,
        msg: SlotsMsg,
        state: &mut SlotsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SlotsMsg::Acquire(who, reply) => {
                state.waiting.push_back((who, reply));
                state.grant(&myself);
            }
            SlotsMsg::Release(id) => {
                state.running.retain(|(held, _)| *held != id);
                state.grant(&myself);
            }
            SlotsMsg::Usage(reply) => {
                let _ = reply.send(SlotUsage {
                    limit: state.limit,
                    running: state.running.iter().map(|(_, who)| who.clone()).collect(),
                    waiting: state.waiting.len(),
                });
            }
        }
        Ok(())
    }
}

/// Waits for a slot. `None` if the slots actor is gone (the daemon is stopping).
pub async fn acquire(slots: &ActorRef<SlotsMsg>, who: impl Into<String>) -> Option<SlotGuard> {
    let who = who.into();
    match slots
        .call(|reply| SlotsMsg::Acquire(who, reply), None)
        .await
    {
        Ok(ractor::rpc::CallResult::Success(guard)) => Some(guard),
        _ => None,
    }
}
