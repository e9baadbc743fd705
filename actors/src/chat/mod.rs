//! Chat: the port to messaging platforms and the actors that turn chat messages into agent
//! runs.

pub mod command;
pub mod group;
pub mod port;
pub mod router;
pub mod split;
pub mod trigger;

pub use port::{
    ChatId, ChatTransport, Format, InboundSink, IncomingMessage, Platform, Receipt, Taken,
    TransportError, TransportFuture, deliver_once,
};
