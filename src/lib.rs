//! borg: a home-server daemon that turns chat messages into work by AI coding agents, built as
//! a supervision tree of actors (see ARCHITECTURE.md). This crate is the daemon itself: the
//! command line, configuration, the wiring of the tree, and the adapters to the outside
//! world (redb, git, Docker, chat platforms, the claude CLI, HTTP).
//!
//! Everything but the parsers of outside input is behind the default feature `daemon`; see
//! Cargo.toml and ARCHITECTURE.md ("Fuzzing builds only the parsers").

/// Items that exist only with the feature `daemon` (the default).
macro_rules! daemon {
    ($($item:item)*) => { $(#[cfg(feature = "daemon")] $item)* };
}

pub mod claude;
pub mod config;

daemon! {
    pub mod backup;
    pub mod chat;
    pub mod control;
    pub mod daemon;
    pub mod demo;
    pub mod discord;
    pub mod docker;
    pub mod doctor;
    pub mod git;
    pub mod image_cli;
    pub mod logging;
    pub mod model;
    pub mod pipeline;
    pub mod release_cli;
    pub mod sandbox;
    pub mod self_update;
    pub mod status;
    pub mod store;
    pub mod systemd;
    pub mod tasks_cli;
    pub mod telegram;
    pub mod tree;
    pub mod web;
    pub mod whatsapp;
    pub mod wiring;
}
