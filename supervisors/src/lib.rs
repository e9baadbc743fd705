//! OTP-grade supervision for [ractor](https://docs.rs/ractor).
//!
//! ractor gives actors, mailboxes and supervision *events*; it leaves restart policy to the
//! user. This crate supplies what Erlang/OTP's `supervisor` offers, plus what long-running
//! daemons need on top:
//!
//! - [`ChildSpec`]s with restart types ([`Restart`]: permanent, transient, temporary) and
//!   shutdown modes ([`Shutdown`]: brutal kill, timeout then kill, infinity);
//! - strategies ([`Strategy`]: one_for_one, one_for_all, rest_for_one) and dynamic children
//!   ([`SupervisorRef::start_child`]), thousands of them;
//! - restart [`Intensity`] over a sliding period, escalating to the parent when exceeded;
//! - exponential [`Backoff`] with jitter between restarts, reset after a stable period;
//! - ordered shutdown in reverse start order;
//! - [circuit breakers](breaker) that park a failing child instead of escalating;
//! - [snapshots](snapshot): versioned state bytes, a [`SnapshotStore`](snapshot::SnapshotStore)
//!   port and incarnation fencing;
//! - [introspection](introspect): a registry of every supervised actor with its mailbox depth,
//!   restarts, breaker state and snapshot age, and an event stream;
//! - a [`Heartbeat`]: a callback a supervisor calls periodically from its own mailbox loop,
//!   for watchdogs that must stop hearing from a wedged supervisor.
//!
//! It knows nothing of the program it supervises. See [`SupervisorRef`] for a runnable example.

pub mod api;
pub mod breaker;
mod children;
mod clock;
pub mod heartbeat;
pub mod instrument;
pub mod introspect;
pub mod policy;
pub mod snapshot;
pub mod spec;
pub mod supervisor;
mod supervisor_ref;

pub use api::{ChildCounts, ChildInfo, SupervisorError, SupervisorMsg};
pub use breaker::{BreakerPolicy, BreakerState};
pub use heartbeat::Heartbeat;
pub use instrument::{Handle, Instrumented};
pub use introspect::{ActorInfo, ActorStats, Event, EventRecord, Introspection, Status};
pub use policy::{Backoff, Intensity, Restart, Shutdown, Strategy};
pub use spec::{ChildId, ChildSpec, StartCtx, StartError, StartResult};
pub use supervisor::{Supervisor, SupervisorSpec};
pub use supervisor_ref::SupervisorRef;
