//! The gateway actor's messages and counters, shared by the actor and the serenity event
//! handler that feeds it.

use ractor::RpcReplyPort;
use serenity::model::channel::Message;

/// The gateway actor's messages. Events come from serenity's handler; `Watch` is its timer.
pub enum GatewayMsg {
    /// MESSAGE_CREATE.
    Created(Box<Message>),
    /// READY: a new session was identified.
    Ready { session_id: String },
    /// RESUMED: the session survived a reconnect.
    Resumed,
    /// Serenity's client returned: the gateway is gone for good (or was shut down).
    Ended(Result<(), String>),
    /// Check the shard's connection.
    Watch,
    /// Counters since this incarnation started.
    Stats(RpcReplyPort<GatewayStats>),
}

/// Counters of one gateway incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// The shard was connected at the last check or event.
    pub connected: bool,
    /// READY events: identified sessions.
    pub sessions: u64,
    /// RESUMED events.
    pub resumes: u64,
    /// Messages handed to the sink.
    pub delivered: u64,
    /// Messages from bots (itself included), system messages, messages without text.
    pub ignored: u64,
}
