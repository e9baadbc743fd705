//! The supervisor's side of a [`Heartbeat`]: the pending timer and its generation.
use ractor::ActorRef;

use super::SupervisorState;
use crate::api::{SupervisorMsg, Timer};
use crate::heartbeat::Heartbeat;

/// The heartbeat a supervisor keeps, if any, and the generation of its pending timer.
#[derive(Default)]
pub(super) struct Beating {
    heartbeat: Option<Heartbeat>,
    generation: u64,
}

impl SupervisorState {
    /// Replaces the heartbeat (or removes it with `None`) and beats at once.
    pub(super) fn set_heartbeat(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        heartbeat: Option<Heartbeat>,
    ) {
        self.beating.generation += 1;
        self.beating.heartbeat = heartbeat;
        self.beat(myself, self.beating.generation);
    }

    /// A beat's timer fired (or a heartbeat was just set): call back and set the next timer.
    pub(super) fn beat(&mut self, myself: &ActorRef<SupervisorMsg>, generation: u64) {
        if generation != self.beating.generation {
            return;
        }
        let Some(heartbeat) = &self.beating.heartbeat else {
            return;
        };
        heartbeat.beat();
        myself.send_after(heartbeat.every(), move || {
            SupervisorMsg::Timer(Timer::Heartbeat { generation })
        });
    }
}
