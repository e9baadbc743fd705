//! Counting messages in and out of an actor, so its mailbox depth can be seen.
//!
//! [`Instrumented`] wraps any ractor [`Actor`] and counts each message it handles;
//! [`Handle`] wraps an [`ActorRef`] and counts each message sent through it. Supervisors spawn
//! every child through [`Instrumented`], so counting costs one relaxed atomic add per message
//! on each side and nothing else.

use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, SupervisionEvent,
    concurrency::Duration, rpc::CallResult,
};

use crate::introspect::ActorStats;

/// An actor with its handled-message counter.
pub struct Instrumented<A> {
    inner: A,
    stats: Arc<ActorStats>,
}

impl<A> Instrumented<A> {
    /// Wraps `inner`, counting into `stats`.
    pub fn new(inner: A, stats: Arc<ActorStats>) -> Self {
        Self { inner, stats }
    }
}

impl<A: Actor> Actor for Instrumented<A> {
    type Msg = A::Msg;
    type State = A::State;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        self.inner.pre_start(myself, args).await
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.post_start(myself, state).await
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.post_stop(myself, state).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.stats.record_handled();
        self.inner.handle(myself, message, state).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner
            .handle_supervisor_evt(myself, message, state)
            .await
    }
}

/// An [`ActorRef`] that counts what it sends, for mailbox-depth introspection.
pub struct Handle<M: ractor::Message> {
    actor: ActorRef<M>,
    stats: Arc<ActorStats>,
}

impl<M: ractor::Message> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<M: ractor::Message> Handle<M> {
    /// A handle on `actor` counting into `stats` (from [`Introspection::stats`](crate::Introspection::stats)).
    pub fn new(actor: ActorRef<M>, stats: Arc<ActorStats>) -> Self {
        Self { actor, stats }
    }

    /// A typed handle on a supervised child's cell. The caller vouches for the message type;
    /// a wrong one fails at send time with `MessagingErr::InvalidActorType`.
    pub fn from_cell(cell: ActorCell, stats: Arc<ActorStats>) -> Self {
        Self::new(cell.into(), stats)
    }

    /// Sends without waiting.
    pub fn cast(&self, msg: M) -> Result<(), MessagingErr<M>> {
        self.stats.record_sent();
        self.actor.cast(msg)
    }

    /// Sends a request and waits for the reply, up to `timeout` if given.
    pub async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> M,
        timeout: Option<Duration>,
    ) -> Result<CallResult<T>, MessagingErr<M>> {
        self.stats.record_sent();
        self.actor.call(msg, timeout).await
    }

    /// The underlying reference (sends through it are not counted).
    pub fn actor(&self) -> &ActorRef<M> {
        &self.actor
    }

    /// The counters this handle feeds.
    pub fn stats(&self) -> &Arc<ActorStats> {
        &self.stats
    }
}
