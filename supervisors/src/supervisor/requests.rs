//! Requests from outside the tree: OTP's terminate_child, restart_child, delete_child,
//! which_children and count_children.

use ractor::{ActorCell, ActorRef};

use super::SupervisorState;
use crate::api::{ChildCounts, ChildInfo, SupervisorError, SupervisorMsg};
use crate::breaker::Breaker;
use crate::introspect::Status;

impl SupervisorState {
    pub(super) async fn terminate(&mut self, id: &str) -> Result<(), SupervisorError> {
        let path = self
            .children
            .get(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?
            .path
            .clone();
        // Detaching also bumps the generation, cancelling pending restart and breaker timers.
        if self.stop_one(id, Status::Stopped).await {
            self.introspection.exited(&path, "terminated");
        } else {
            self.introspection.stopped(&path, "terminated");
        }
        Ok(())
    }

    pub(super) async fn restart_on_request(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let child = self
            .children
            .get(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?;
        match child.status {
            Status::Running => Err(SupervisorError::Running(id.to_owned())),
            Status::Restarting => Err(SupervisorError::Restarting(id.to_owned())),
            Status::Parked => Err(SupervisorError::Parked(id.to_owned())),
            Status::Stopped => self.start(myself, id).await.map_err(SupervisorError::Start),
        }
    }

    pub(super) fn delete(&mut self, id: &str) -> Result<(), SupervisorError> {
        let child = self
            .children
            .get(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?;
        match child.status {
            Status::Running => Err(SupervisorError::Running(id.to_owned())),
            Status::Restarting => Err(SupervisorError::Restarting(id.to_owned())),
            Status::Parked | Status::Stopped => {
                let path = child.path.clone();
                self.children.remove(id);
                self.introspection.stopped(&path, "deleted");
                Ok(())
            }
        }
    }

    pub(super) fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                kind: c.spec.kind.clone(),
                status: c.status,
                restarts: c.restarts,
                breaker: c.breaker.as_ref().map(Breaker::state),
                actor: c.cell.clone(),
            })
            .collect()
    }

    pub(super) fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts {
            specs: self.children.len(),
            ..ChildCounts::default()
        };
        for child in self.children.iter() {
            if child.cell.is_some() {
                counts.active += 1;
            }
            if child.spec.kind == "supervisor" {
                counts.supervisors += 1;
            } else {
                counts.workers += 1;
            }
        }
        counts
    }
}
