//! Circuit breakers at work: parking a child, the cool-down and probe timers, and operators
//! forcing a breaker open or closed. The state machine itself is `crate::breaker`.

use std::time::{Duration, Instant};

use ractor::{ActorProcessingErr, ActorRef};

use super::SupervisorState;
use crate::api::{SupervisorError, SupervisorMsg, Timer};
use crate::breaker::{Breaker, BreakerPolicy, BreakerState, Verdict};
use crate::introspect::Status;
use crate::spec::ChildId;

impl SupervisorState {
    pub(super) fn park(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
        cool_down: Option<Duration>,
    ) {
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        child.status = Status::Parked;
        let path = child.path.clone();
        let state = child
            .breaker
            .as_ref()
            .map_or(BreakerState::Open, Breaker::state);
        self.introspection.set_status(&path, Status::Parked);
        self.introspection.breaker(&path, state);
        if let Some(cool_down) = cool_down {
            let timer = self.timer_for(&[id.to_owned()], |mut v| {
                let (id, generation) = v.remove(0);
                Timer::CoolDown { id, generation }
            });
            myself.send_after(cool_down, move || SupervisorMsg::Timer(timer));
        }
    }

    pub(super) async fn on_timer(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        timer: Timer,
    ) -> Result<(), ActorProcessingErr> {
        match timer {
            Timer::Restart { group } => {
                let current: Vec<ChildId> = group
                    .into_iter()
                    .filter(|(id, generation)| {
                        self.children
                            .get(id)
                            .is_some_and(|c| c.generation == *generation)
                    })
                    .map(|(id, _)| id)
                    .collect();
                self.restart_group(myself, current).await
            }
            Timer::Heartbeat { generation } => {
                self.beat(myself, generation);
                Ok(())
            }
            Timer::CoolDown { id, generation } => {
                let Some(child) = self.children.get_mut(&id) else {
                    return Ok(());
                };
                if child.generation != generation || child.status != Status::Parked {
                    return Ok(());
                }
                let probe = child
                    .breaker
                    .as_mut()
                    .is_some_and(Breaker::on_cool_down_elapsed);
                if probe {
                    self.probe(myself, &id).await;
                }
                Ok(())
            }
            Timer::Probe { id, generation } => {
                let Some(child) = self.children.get_mut(&id) else {
                    return Ok(());
                };
                if child.generation == generation && child.status == Status::Running {
                    let closed = child
                        .breaker
                        .as_mut()
                        .is_some_and(Breaker::on_probe_survived);
                    if closed {
                        child.consecutive = 0;
                        let path = child.path.clone();
                        self.introspection.breaker(&path, BreakerState::Closed);
                    }
                }
                Ok(())
            }
        }
    }

    /// Half-open: start one incarnation and check back after the probe uptime.
    async fn probe(&mut self, myself: &ActorRef<SupervisorMsg>, id: &str) {
        let Some(child) = self.children.get(id) else {
            return;
        };
        let path = child.path.clone();
        self.introspection.breaker(&path, BreakerState::HalfOpen);
        match self.start(myself, id).await {
            Ok(Some(_)) => {
                let Some(child) = self.children.get_mut(id) else {
                    return;
                };
                child.restarts += 1;
                self.introspection.restarted(&path);
                let uptime = child
                    .breaker
                    .as_ref()
                    .map_or(Duration::ZERO, |b| b.policy().probe_uptime);
                let timer = self.timer_for(&[id.to_owned()], |mut v| {
                    let (id, generation) = v.remove(0);
                    Timer::Probe { id, generation }
                });
                myself.send_after(uptime, move || SupervisorMsg::Timer(timer));
            }
            Ok(None) => {}
            Err(e) => {
                let verdict = self
                    .children
                    .get_mut(id)
                    .and_then(|c| c.breaker.as_mut())
                    .map(|b| b.on_failure(Instant::now()));
                self.introspection
                    .failed(&path, &e.to_string(), Status::Parked);
                let cool_down = match verdict {
                    Some(Verdict::Park(d)) => Some(d),
                    _ => None,
                };
                self.park(myself, id, cool_down);
            }
        }
    }

    pub(super) async fn force_breaker(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
        open: bool,
    ) -> Result<(), SupervisorError> {
        let child = self
            .children
            .get_mut(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?;
        let breaker = child
            .breaker
            .get_or_insert_with(|| Breaker::new(BreakerPolicy::default()));
        if open {
            breaker.force_open();
            // A temporary child has no spec left to park once stopped.
            if self.stop_one(id, Status::Parked).await {
                self.park(myself, id, None);
            }
            return Ok(());
        }
        breaker.force_close();
        let (parked, path) = (child.status == Status::Parked, child.path.clone());
        self.introspection.breaker(&path, BreakerState::Closed);
        if parked {
            self.children.detach(id);
            self.start(myself, id)
                .await
                .map_err(SupervisorError::Start)?;
        }
        Ok(())
    }
}
