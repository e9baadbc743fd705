//! Child specifications: what a supervisor knows about each child and how to start it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorCell, SpawnErr};

use crate::breaker::BreakerPolicy;
use crate::instrument::Instrumented;
use crate::introspect::{ActorStats, Introspection};
use crate::policy::{Backoff, Restart, Shutdown};

/// A child's name among its siblings; its tree path is `<supervisor path>/<id>`.
pub type ChildId = String;

/// Why a child could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "start failed: {}", self.0)
    }
}

impl std::error::Error for StartError {}

impl From<SpawnErr> for StartError {
    fn from(e: SpawnErr) -> Self {
        StartError(e.to_string())
    }
}

/// Everything a start function needs: where to link, where it sits in the tree, and the
/// counters of the incarnation being started.
#[derive(Clone)]
pub struct StartCtx {
    /// The supervisor to link to.
    pub supervisor: ActorCell,
    /// The child's path in the tree.
    pub path: String,
    /// The tree's registry (a child supervisor inherits it).
    pub introspection: Introspection,
    /// Counters for this incarnation; pass them to [`Persister::restore`](crate::snapshot::Persister::restore)
    /// so snapshot ages show up.
    pub stats: Arc<ActorStats>,
    /// How many times this child has been restarted before this start.
    pub restarts: u32,
}

impl StartCtx {
    /// Spawns `actor` linked to the supervisor, instrumented, unnamed in ractor's global
    /// registry (paths identify actors here; global names would collide across trees).
    pub async fn spawn<A: Actor>(
        &self,
        actor: A,
        args: A::Arguments,
    ) -> Result<ActorCell, StartError> {
        self.spawn_named(None, actor, args).await
    }

    /// Like [`spawn`](Self::spawn), registering `name` globally in ractor's registry.
    pub async fn spawn_named<A: Actor>(
        &self,
        name: Option<String>,
        actor: A,
        args: A::Arguments,
    ) -> Result<ActorCell, StartError> {
        let wrapped = Instrumented::new(actor, self.stats.clone());
        let (actor_ref, _join) =
            Actor::spawn_linked(name, wrapped, args, self.supervisor.clone()).await?;
        Ok(actor_ref.get_cell())
    }
}

/// What a start function returns: the running child, or `None` to say "nothing to run"
/// (OTP's `ignore`: the spec is kept, unless temporary, and counts as not running).
pub type StartResult = Result<Option<ActorCell>, StartError>;

/// A boxed start function.
pub type StartFn =
    Arc<dyn Fn(StartCtx) -> Pin<Box<dyn Future<Output = StartResult> + Send>> + Send + Sync>;

/// How to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub id: ChildId,
    /// What the child is, for introspection (`worker`, `supervisor`, `group`, ...).
    pub kind: String,
    pub start: StartFn,
    pub restart: Restart,
    pub shutdown: Shutdown,
    pub backoff: Backoff,
    pub breaker: Option<BreakerPolicy>,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A permanent worker started by `start`, with OTP's 5 s shutdown and the default backoff.
    pub fn new<F, Fut>(id: impl Into<ChildId>, start: F) -> Self
    where
        F: Fn(StartCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StartResult> + Send + 'static,
    {
        ChildSpec {
            id: id.into(),
            kind: "worker".into(),
            start: Arc::new(move |ctx| Box::pin(start(ctx))),
            restart: Restart::Permanent,
            shutdown: Shutdown::default(),
            backoff: Backoff::default(),
            breaker: None,
        }
    }

    /// A worker that is `make()` spawned on every (re)start: the usual case.
    pub fn actor<A, F>(id: impl Into<ChildId>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        Self::new(id, move |ctx: StartCtx| {
            let make = make.clone();
            async move {
                let (actor, args) = make();
                ctx.spawn(actor, args).await.map(Some)
            }
        })
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Puts a circuit breaker in front of this child's restarts.
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.breaker = Some(policy);
        self
    }

    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
}
