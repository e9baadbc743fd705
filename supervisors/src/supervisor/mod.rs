//! The supervisor actor: starts children from specs, restarts them by strategy, counts restart
//! intensity, backs off, parks children behind circuit breakers, and shuts down in order.
//!
//! Everything slow is a message to itself: a restart after a backoff, a retry after a failed
//! start, a breaker's cool-down and probe check are all timers (`send_after`), never a sleep in
//! a handler, so the supervisor keeps answering `which_children` and `terminate_child` while a
//! child is in a restart loop (OTP-9549). The optional [`Heartbeat`](crate::Heartbeat) is such a timer too, so
//! its beats stop whenever the mailbox loop does. Only stopping children (during a group restart,
//! an escalation or shutdown) awaits inside a handler, bounded by each child's shutdown timeout.

use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

mod breaking;
mod heartbeat;
mod requests;

use crate::api::{SupervisorError, SupervisorMsg, Timer};
use crate::breaker::Verdict;
use crate::children::Children;
use crate::introspect::{ActorStats, Introspection, Status};
use crate::policy::{Intensity, Jitter, Restart, RestartWindow, Shutdown, Strategy};
use crate::spec::{ChildId, ChildSpec, StartCtx, StartError};

/// How a supervisor behaves and what it starts with.
#[derive(Clone, Debug, Default)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    pub intensity: Intensity,
    /// Started in order when the supervisor starts; more can be added at run time.
    pub children: Vec<ChildSpec>,
}

/// Arguments of a supervisor actor: its spec and its place in the tree.
pub struct SupervisorArgs {
    pub spec: SupervisorSpec,
    /// Path of the supervisor itself; children live at `<path>/<id>`.
    pub path: String,
    pub introspection: Introspection,
}

/// The supervisor actor. Spawn a root with [`SupervisorRef::spawn_root`], nest one with
/// [`ChildSpec::supervisor`].
pub struct Supervisor;

/// The supervisor's state, private to the actor.
pub struct SupervisorState {
    path: String,
    strategy: Strategy,
    intensity: Intensity,
    introspection: Introspection,
    children: Children,
    window: RestartWindow,
    jitter: Jitter,
    beating: heartbeat::Beating,
}

impl ChildSpec {
    /// A child that is itself a supervisor of `spec` (restarted with fresh children from the
    /// spec). Shutdown waits for its subtree (`Infinity`), as in OTP.
    pub fn supervisor(id: impl Into<ChildId>, spec: SupervisorSpec) -> Self {
        ChildSpec::new(id, move |ctx: StartCtx| {
            let spec = spec.clone();
            async move {
                let args = SupervisorArgs {
                    spec,
                    path: ctx.path.clone(),
                    introspection: ctx.introspection.clone(),
                };
                ctx.spawn(Supervisor, args).await.map(Some)
            }
        })
        .kind("supervisor")
        .shutdown(Shutdown::Infinity)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            path: args.path,
            strategy: args.spec.strategy,
            intensity: args.spec.intensity,
            introspection: args.introspection,
            children: Children::default(),
            window: RestartWindow::default(),
            jitter: Jitter::seeded(),
            beating: heartbeat::Beating::default(),
        };
        for spec in args.spec.children {
            let id = spec.id.clone();
            if let Err(e) = state.add_and_start(&myself, spec).await {
                // OTP: a supervisor whose static child cannot start fails to start itself.
                state.shutdown_all().await;
                return Err(format!("{}: child {id}: {e}", state.path).into());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.shutdown_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let result = state.add_and_start(&myself, *spec).await;
                answer(reply, result);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let result = state.terminate(&id).await;
                answer(reply, result);
            }
            SupervisorMsg::RestartChild(id, reply) => {
                let result = state.restart_on_request(&myself, &id).await;
                answer(reply, result);
            }
            SupervisorMsg::DeleteChild(id, reply) => answer(reply, state.delete(&id)),
            SupervisorMsg::WhichChildren(reply) => answer(reply, state.which_children()),
            SupervisorMsg::Lookup(id, reply) => {
                answer(reply, state.children.get(&id).and_then(|c| c.cell.clone()))
            }
            SupervisorMsg::CountChildren(reply) => answer(reply, state.count_children()),
            SupervisorMsg::ForceBreaker(id, open, reply) => {
                let result = state.force_breaker(&myself, &id, open).await;
                answer(reply, result);
            }
            SupervisorMsg::SetHeartbeat(heartbeat, reply) => {
                state.set_heartbeat(&myself, heartbeat);
                answer(reply, ());
            }
            SupervisorMsg::Timer(timer) => state.on_timer(&myself, timer).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, abnormal, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, true, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // OTP treats `killed` as abnormal; any other stop is a normal exit.
                let killed = reason.as_deref() == Some("killed");
                (cell, killed, reason.unwrap_or_else(|| "normal".into()))
            }
            _ => return Ok(()),
        };
        match state.children.owner_of(cell.get_id()) {
            Some(id) => state.on_child_exit(&myself, &id, abnormal, &reason).await,
            // An incarnation we stopped ourselves, or one already replaced.
            None => Ok(()),
        }
    }
}

/// Replies, ignoring a caller that stopped waiting (it learns nothing it could act on).
fn answer<T: Send + 'static>(reply: RpcReplyPort<T>, value: T) {
    let _ = reply.send(value);
}

impl SupervisorState {
    fn child_path(&self, id: &str) -> String {
        format!("{}/{id}", self.path)
    }

    async fn add_and_start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let id = spec.id.clone();
        let path = self.child_path(&id);
        if !self.children.insert(spec, path) {
            return Err(SupervisorError::AlreadyPresent(id));
        }
        match self.start(myself, &id).await {
            Ok(cell) => Ok(cell),
            Err(e) => {
                // OTP's start_child: a spec whose start failed is not kept.
                self.children.remove(&id);
                Err(SupervisorError::Start(e))
            }
        }
    }

    /// Starts one incarnation of `id`. `Ok(None)` means the start function chose not to run.
    pub(super) async fn start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<Option<ActorCell>, StartError> {
        let Some(child) = self.children.get(id) else {
            return Err(StartError(format!("no child {id}")));
        };
        let stats = std::sync::Arc::new(ActorStats::default());
        let ctx = StartCtx {
            supervisor: myself.get_cell(),
            path: child.path.clone(),
            introspection: self.introspection.clone(),
            stats: stats.clone(),
            restarts: child.restarts,
        };
        let (start, kind, restart, path) = (
            child.spec.start.clone(),
            child.spec.kind.clone(),
            child.spec.restart,
            child.path.clone(),
        );
        match start(ctx).await? {
            Some(cell) => {
                self.children.attach(id, cell.clone());
                self.introspection.started(&path, &kind, stats);
                Ok(Some(cell))
            }
            None => {
                if restart == Restart::Temporary {
                    self.children.remove(id);
                } else if let Some(child) = self.children.get_mut(id) {
                    child.status = Status::Stopped;
                }
                Ok(None)
            }
        }
    }

    async fn on_child_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
        abnormal: bool,
        reason: &str,
    ) -> Result<(), ActorProcessingErr> {
        self.children.detach(id);
        let Some(child) = self.children.get_mut(id) else {
            return Ok(());
        };
        let path = child.path.clone();
        match (child.spec.restart, abnormal) {
            (Restart::Temporary, _) => {
                self.children.remove(id);
                self.introspection.stopped(&path, reason);
                return Ok(());
            }
            (Restart::Transient, false) => {
                child.status = Status::Stopped;
                self.introspection.exited(&path, reason);
                return Ok(());
            }
            _ => {}
        }
        let now = Instant::now();
        if now.duration_since(child.started_at) >= child.spec.backoff.reset_after {
            child.consecutive = 0;
        }
        if let Some(breaker) = child.breaker.as_mut() {
            match breaker.on_failure(now) {
                Verdict::Restart => {}
                Verdict::Park(cool_down) => {
                    self.introspection.failed(&path, reason, Status::Parked);
                    self.park(myself, id, Some(cool_down));
                    return Ok(());
                }
                Verdict::Hold => {
                    self.introspection.failed(&path, reason, Status::Parked);
                    self.park(myself, id, None);
                    return Ok(());
                }
            }
        }
        self.introspection.failed(&path, reason, Status::Restarting);
        child.status = Status::Restarting;
        if !self.window.record(now, self.intensity) {
            return Err(self.escalate(reason).await);
        }
        let group = match self.strategy {
            Strategy::OneForOne => vec![id.to_owned()],
            Strategy::OneForAll => self.children.ids(),
            Strategy::RestForOne => self.children.ids_from(id),
        };
        let group = self.stop_bystanders(id, group).await;
        self.schedule_restart(myself, id, group).await
    }

    /// Stops the running siblings in a group restart (reverse start order) and returns the
    /// ids to start again; temporary bystanders are dropped, as in OTP.
    async fn stop_bystanders(&mut self, failed: &str, group: Vec<ChildId>) -> Vec<ChildId> {
        let mut restart = Vec::with_capacity(group.len());
        for id in group.iter().rev() {
            if id != failed {
                let Some(child) = self.children.get(id) else {
                    continue;
                };
                if child.status != Status::Running {
                    continue;
                }
                let path = child.path.clone();
                if !self.stop_one(id, Status::Restarting).await {
                    self.introspection.stopped(&path, "shutdown");
                    continue;
                }
                self.introspection.set_status(&path, Status::Restarting);
            }
            restart.push(id.clone());
        }
        restart.reverse();
        restart
    }

    /// Restarts `group` now, or after the failed child's backoff.
    async fn schedule_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        failed: &str,
        group: Vec<ChildId>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(child) = self.children.get_mut(failed) else {
            return Ok(());
        };
        let delay = child
            .spec
            .backoff
            .delay(child.consecutive, self.jitter.next());
        child.consecutive = child.consecutive.saturating_add(1);
        if delay.is_zero() {
            return self.restart_group(myself, group).await;
        }
        let timer = self.timer_for(&group, |group| Timer::Restart { group });
        myself.send_after(delay, move || SupervisorMsg::Timer(timer));
        Ok(())
    }

    pub(super) fn timer_for(
        &self,
        ids: &[ChildId],
        make: impl FnOnce(Vec<(ChildId, u64)>) -> Timer,
    ) -> Timer {
        let tagged = ids
            .iter()
            .filter_map(|id| self.children.get(id).map(|c| (id.clone(), c.generation)))
            .collect();
        make(tagged)
    }

    /// Starts every child of `group` still waiting for a restart, in start order. If one fails
    /// to start, the ones started in this round are stopped again and the whole group is
    /// retried later; every failed attempt counts towards the intensity.
    pub(super) async fn restart_group(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        mut group: Vec<ChildId>,
    ) -> Result<(), ActorProcessingErr> {
        self.children.in_start_order(&mut group);
        group.retain(|id| {
            self.children
                .get(id)
                .is_some_and(|c| c.status == Status::Restarting)
        });
        let mut started: Vec<ChildId> = Vec::new();
        for id in &group {
            match self.start(myself, id).await {
                Ok(_) => {
                    if let Some(child) = self.children.get_mut(id) {
                        child.restarts += 1;
                        let path = child.path.clone();
                        self.introspection.restarted(&path);
                    }
                    started.push(id.clone());
                }
                Err(e) => {
                    for done in started.iter().rev() {
                        self.stop_one(done, Status::Restarting).await;
                    }
                    let reason = e.to_string();
                    if let Some(child) = self.children.get_mut(id) {
                        child.status = Status::Restarting;
                        let path = child.path.clone();
                        self.introspection
                            .failed(&path, &reason, Status::Restarting);
                    }
                    if !self.window.record(Instant::now(), self.intensity) {
                        return Err(self.escalate(&reason).await);
                    }
                    let Some(child) = self.children.get_mut(id) else {
                        return Ok(());
                    };
                    let delay = child
                        .spec
                        .backoff
                        .delay(child.consecutive, self.jitter.next());
                    child.consecutive = child.consecutive.saturating_add(1);
                    let timer = self.timer_for(&group, |group| Timer::Restart { group });
                    // Even with no delay the retry goes through the mailbox, so requests
                    // queued meanwhile are served between attempts.
                    if delay.is_zero() {
                        myself.cast(SupervisorMsg::Timer(timer))?;
                    } else {
                        myself.send_after(delay, move || SupervisorMsg::Timer(timer));
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Stops the running incarnation of `id`, if any, by its shutdown mode. A temporary
    /// child's spec is dropped; any other is left in `status`. Returns whether the spec is kept.
    pub(super) async fn stop_one(&mut self, id: &str, status: Status) -> bool {
        let Some(child) = self.children.get(id) else {
            return false;
        };
        let (shutdown, temporary) = (
            child.spec.shutdown,
            child.spec.restart == Restart::Temporary,
        );
        if let Some(cell) = self.children.detach(id) {
            stop_child(&cell, shutdown).await;
        }
        if temporary {
            self.children.remove(id);
            return false;
        }
        if let Some(child) = self.children.get_mut(id) {
            child.status = status;
        }
        true
    }

    /// Intensity exceeded: stop every child in order, then fail to the parent.
    async fn escalate(&mut self, reason: &str) -> ActorProcessingErr {
        let why = format!(
            "{}: more than {} restarts in {:?} (last: {reason})",
            self.path, self.intensity.max_restarts, self.intensity.period
        );
        tracing::error!(supervisor = %self.path, "{why}; shutting down and escalating");
        self.shutdown_all().await;
        self.introspection.escalated(&self.path, &why);
        why.into()
    }

    /// Stops every child in reverse start order, each by its own shutdown mode.
    async fn shutdown_all(&mut self) {
        for id in self.children.ids().into_iter().rev() {
            let Some(path) = self.children.get(&id).map(|c| c.path.clone()) else {
                continue;
            };
            self.stop_one(&id, Status::Stopped).await;
            self.introspection.stopped(&path, "shutdown");
        }
    }
}

/// Stops one child by its shutdown mode: ask, wait up to the timeout, then kill.
async fn stop_child(cell: &ActorCell, shutdown: Shutdown) {
    let reason = Some("shutdown".to_string());
    match shutdown {
        Shutdown::BrutalKill => {
            let _ = cell.kill_and_wait(None).await;
        }
        Shutdown::Timeout(limit) => {
            if cell.stop_and_wait(reason, Some(limit)).await.is_err() {
                tracing::warn!(actor = %cell.get_id(), "did not stop within {limit:?}; killing it");
                let _ = cell.kill_and_wait(None).await;
            }
        }
        Shutdown::Infinity => {
            let _ = cell.stop_and_wait(reason, None).await;
        }
    }
}
