//! Agent slots: the one global limit on agents running at once (`MAX_CONCURRENT_AGENTS`),
//! shared by chat groups and pipeline tasks.
//!
//! Requests wait in one FIFO queue, so whoever asked first runs first, chat or pipeline alike.
//! A granted slot is a [`SlotGuard`]: dropping it — when the run ends, fails, panics or its
//! task is aborted — gives the slot back, so a slot cannot leak with its holder.
//!
//! Before a restart (a self-update) the daemon drains the slots: from then on no slot is
//! granted, and the drain is answered once the last held slot is given back. Waiters are not
//! refused: they keep waiting, and end with the shutdown that follows the drain.

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
    /// Stop granting slots for good; the reply comes once no slot is held.
    Drain(RpcReplyPort<()>),
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
    /// Set by the first `Drain`: nothing is granted any more. Holds the drains still waiting
    /// for the running slots to be given back.
    draining: Option<Vec<RpcReplyPort<()>>>,
}

impl SlotsState {
    /// Grants slots to waiters while any are free. A waiter that stopped waiting (its reply
    /// port is closed) is skipped and its slot goes to the next one.
    fn grant(&mut self, myself: &ActorRef<SlotsMsg>) {
        if self.draining.is_some() {
            return;
        }
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

    /// Answers the waiting drains if no slot is held any more.
    fn answer_drains(&mut self) {
        if !self.running.is_empty() {
            return;
        }
        if let Some(drains) = &mut self.draining {
            for reply in drains.drain(..) {
                // A drain that stopped waiting (timed out) needs no answer.
                let _ = reply.send(());
            }
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
            draining: None,
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
                state.answer_drains();
            }
            SlotsMsg::Drain(reply) => {
                state.draining.get_or_insert_with(Vec::new).push(reply);
                state.answer_drains();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn usage(slots: &ActorRef<SlotsMsg>) -> SlotUsage {
        ractor::call!(slots, SlotsMsg::Usage).unwrap()
    }

    #[tokio::test]
    async fn drain_answers_once_held_slots_are_back_and_grants_nothing_more() {
        let (slots, _) = Actor::spawn(None, AgentSlots, 1).await.unwrap();
        let held = acquire(&slots, "first").await.unwrap();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { acquire(&slots, "second").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut drain = tokio::spawn({
            let slots = slots.clone();
            async move { ractor::call!(slots, SlotsMsg::Drain) }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut drain)
                .await
                .is_err(),
            "the drain waits while a slot is held"
        );

        drop(held);
        drain.await.unwrap().unwrap();
        // The waiter is not granted the freed slot: it keeps waiting for the shutdown.
        let now = usage(&slots).await;
        assert_eq!((now.running.len(), now.waiting), (0, 1));
        assert!(!waiter.is_finished());
        // A later request waits too, and a second drain is answered at once.
        let late = tokio::spawn({
            let slots = slots.clone();
            async move { acquire(&slots, "late").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        ractor::call!(slots, SlotsMsg::Drain).unwrap();
        assert_eq!(usage(&slots).await.waiting, 2);

        slots.stop(None);
        assert!(
            waiter.await.unwrap().is_none(),
            "waiters end with the actor"
        );
        assert!(late.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn drain_with_no_slot_held_answers_at_once() {
        let (slots, _) = Actor::spawn(None, AgentSlots, 2).await.unwrap();
        // call_t! fails if no answer comes within the time.
        ractor::call_t!(slots, SlotsMsg::Drain, 5_000).expect("answered at once");
        slots.stop(None);
    }
}
