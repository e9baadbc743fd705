//! The supervisor's protocol: its messages, what it answers with, and its errors. The typed
//! reference that sends them is [`SupervisorRef`](crate::SupervisorRef).

use std::fmt;

use ractor::{ActorCell, RpcReplyPort};

use crate::breaker::BreakerState;
use crate::heartbeat::Heartbeat;
use crate::introspect::Status;
use crate::spec::{ChildId, ChildSpec, StartError};

/// Messages a supervisor accepts. Prefer the methods of [`SupervisorRef`].
pub enum SupervisorMsg {
    /// Boxed: a spec is much larger than every other message.
    StartChild(
        Box<ChildSpec>,
        RpcReplyPort<Result<Option<ActorCell>, SupervisorError>>,
    ),
    TerminateChild(ChildId, RpcReplyPort<Result<(), SupervisorError>>),
    RestartChild(
        ChildId,
        RpcReplyPort<Result<Option<ActorCell>, SupervisorError>>,
    ),
    DeleteChild(ChildId, RpcReplyPort<Result<(), SupervisorError>>),
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// The running incarnation of one child: constant time, unlike `WhichChildren`.
    Lookup(ChildId, RpcReplyPort<Option<ActorCell>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    /// `true` holds the child's breaker open (stopping the child), `false` closes it
    /// (starting a parked child).
    ForceBreaker(ChildId, bool, RpcReplyPort<Result<(), SupervisorError>>),
    /// Installs (or with `None` removes) the supervisor's heartbeat; answered after the first
    /// beat.
    SetHeartbeat(Option<Heartbeat>, RpcReplyPort<()>),
    /// The supervisor's own timers.
    #[doc(hidden)]
    Timer(Timer),
}

/// Timers a supervisor sets for itself. Each names the child generations it was set for (a
/// heartbeat's, the heartbeat's generation), so one that fires after the child (or the
/// heartbeat) moved on is ignored.
#[doc(hidden)]
pub enum Timer {
    Restart { group: Vec<(ChildId, u64)> },
    CoolDown { id: ChildId, generation: u64 },
    Probe { id: ChildId, generation: u64 },
    Heartbeat { generation: u64 },
}

/// One child, as `which_children` reports it.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub id: ChildId,
    pub kind: String,
    pub status: Status,
    pub restarts: u32,
    pub breaker: Option<BreakerState>,
    /// The running incarnation.
    pub actor: Option<ActorCell>,
}

/// OTP's `count_children`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildCounts {
    pub specs: usize,
    pub active: usize,
    pub supervisors: usize,
    pub workers: usize,
}

/// Why a request to a supervisor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorError {
    NotFound(ChildId),
    AlreadyPresent(ChildId),
    /// The child is running (delete and restart need it stopped).
    Running(ChildId),
    /// The child is waiting for a restart.
    Restarting(ChildId),
    /// The child is parked by its breaker; close the breaker instead.
    Parked(ChildId),
    Start(StartError),
    /// The supervisor is gone or did not answer.
    Unavailable(String),
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no child {id}"),
            Self::AlreadyPresent(id) => write!(f, "child {id} already exists"),
            Self::Running(id) => write!(f, "child {id} is running"),
            Self::Restarting(id) => write!(f, "child {id} is restarting"),
            Self::Parked(id) => write!(f, "child {id} is parked by its circuit breaker"),
            Self::Start(e) => e.fmt(f),
            Self::Unavailable(why) => write!(f, "supervisor unavailable: {why}"),
        }
    }
}

impl std::error::Error for SupervisorError {}
