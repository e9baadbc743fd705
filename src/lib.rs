//! borg: a home-server daemon that turns chat messages into work by AI coding agents, built as
//! a supervision tree of actors (see ARCHITECTURE.md). This crate is the daemon itself: the
//! command line, configuration, the wiring of the tree, and the adapters to the outside
//! world (redb for now; git, Docker, chat platforms, the claude CLI and HTTP as they come).

pub mod chat;
pub mod claude;
pub mod config;
pub mod control;
pub mod daemon;
pub mod discord;
pub mod logging;
pub mod status;
pub mod store;
pub mod telegram;
pub mod tree;
