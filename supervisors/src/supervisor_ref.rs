//! A typed reference to a supervisor, with one method per request (OTP's `start_child`,
//! `terminate_child`, `restart_child`, `delete_child`, `which_children`, `count_children`, plus
//! breaker control and shutdown).

use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort, SpawnErr, concurrency::JoinHandle};

use crate::api::{ChildCounts, ChildInfo, SupervisorError, SupervisorMsg};
use crate::heartbeat::Heartbeat;
use crate::introspect::{ActorStats, Introspection};
use crate::spec::ChildSpec;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorSpec};

/// A typed reference to a supervisor.
///
/// ```
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use supervisors::{ChildSpec, Introspection, Restart, SupervisorRef, SupervisorSpec};
///
/// struct Echo;
/// impl Actor for Echo {
///     type Msg = ();
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let spec = SupervisorSpec {
///     children: vec![ChildSpec::actor("echo", || (Echo, ()))],
///     ..SupervisorSpec::default()
/// };
/// let introspection = Introspection::new();
/// let (root, join) = SupervisorRef::spawn_root("app", spec, introspection.clone()).await.unwrap();
/// assert_eq!(root.count_children().await.unwrap().active, 1);
/// assert!(introspection.get("app/echo").is_some());
///
/// // A dynamic child, stopped and deleted again.
/// root.start_child(ChildSpec::actor("job", || (Echo, ())).restart(Restart::Transient)).await.unwrap();
/// root.terminate_child("job").await.unwrap();
/// root.delete_child("job").await.unwrap();
///
/// root.shutdown().await;
/// join.await.unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMsg>,
}

impl SupervisorRef {
    /// Wraps the reference of a running supervisor (e.g. from [`ChildInfo::actor`]).
    pub fn new(actor: ActorRef<SupervisorMsg>) -> Self {
        Self { actor }
    }

    /// Starts a root supervisor at `path`, registered in `introspection`.
    pub async fn spawn_root(
        path: impl Into<String>,
        spec: SupervisorSpec,
        introspection: Introspection,
    ) -> Result<(Self, JoinHandle<()>), SpawnErr> {
        let path = path.into();
        let stats = std::sync::Arc::new(ActorStats::default());
        let args = SupervisorArgs {
            spec,
            path: path.clone(),
            introspection: introspection.clone(),
        };
        let actor = crate::instrument::Instrumented::new(Supervisor, stats.clone());
        let (actor, join) = Actor::spawn(None, actor, args).await?;
        introspection.started(&path, "supervisor", stats);
        Ok((Self { actor }, join))
    }

    /// The underlying actor reference.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, SupervisorError> {
        use ractor::rpc::CallResult;
        match self.actor.call(msg, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(SupervisorError::Unavailable("timed out".into())),
            Ok(CallResult::SenderError) => Err(SupervisorError::Unavailable(
                "stopped while answering".into(),
            )),
            Err(e) => Err(SupervisorError::Unavailable(e.to_string())),
        }
    }

    /// Adds and starts a child at run time (dynamic children).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<ActorCell>, SupervisorError> {
        self.ask(|tx| SupervisorMsg::StartChild(Box::new(spec), tx))
            .await?
    }

    /// Stops a child by its shutdown mode; its spec stays (unless temporary).
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.ask(|tx| SupervisorMsg::TerminateChild(id, tx)).await?
    }

    /// Starts a stopped child again.
    pub async fn restart_child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        let id = id.to_owned();
        self.ask(|tx| SupervisorMsg::RestartChild(id, tx)).await?
    }

    /// Forgets a stopped child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.ask(|tx| SupervisorMsg::DeleteChild(id, tx)).await?
    }

    /// Every child in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.ask(SupervisorMsg::WhichChildren).await
    }

    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.ask(SupervisorMsg::CountChildren).await
    }

    /// The running incarnation of child `id`.
    pub async fn child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        let id = id.to_owned();
        self.ask(|tx| SupervisorMsg::Lookup(id, tx)).await
    }

    /// Holds a child's breaker open (the child is stopped and parked) or closes it (a parked
    /// child starts again).
    pub async fn force_breaker(&self, id: &str, open: bool) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.ask(|tx| SupervisorMsg::ForceBreaker(id, open, tx))
            .await?
    }

    /// Makes the supervisor call `heartbeat`'s callback now and then at its interval, from
    /// its own mailbox loop; `None` stops the beats. A supervisor stuck in a handler, or
    /// escalating, shutting down or stopped, does not beat: a watchdog fed by the callback
    /// (systemd's `WATCHDOG=1`, say) notices. Returns after the first beat.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use supervisors::{Heartbeat, Introspection, SupervisorRef, SupervisorSpec};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (root, join) =
    ///     SupervisorRef::spawn_root("app", SupervisorSpec::default(), Introspection::new())
    ///         .await
    ///         .unwrap();
    /// let beats = Arc::new(AtomicUsize::new(0));
    /// let counter = beats.clone();
    /// let heartbeat = Heartbeat::new(Duration::from_millis(10), move || {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    /// });
    /// root.set_heartbeat(Some(heartbeat)).await.unwrap();
    /// assert_eq!(beats.load(Ordering::Relaxed), 1, "the first beat comes at once");
    /// tokio::time::sleep(Duration::from_millis(100)).await;
    /// assert!(beats.load(Ordering::Relaxed) > 2);
    /// root.shutdown().await;
    /// join.await.unwrap();
    /// # });
    /// ```
    pub async fn set_heartbeat(&self, heartbeat: Option<Heartbeat>) -> Result<(), SupervisorError> {
        self.ask(|tx| SupervisorMsg::SetHeartbeat(heartbeat, tx))
            .await
    }

    /// Stops the supervisor gracefully: its children stop in reverse start order first.
    pub async fn shutdown(&self) {
        let _ = self
            .actor
            .stop_and_wait(Some("shutdown".into()), None)
            .await;
    }
}
