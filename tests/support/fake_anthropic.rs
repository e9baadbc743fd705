//! The scripted Messages API the claude tests talk to: `borg::model::ScriptedModel` with no
//! rules, so only the prompt-embedded syntax applies (`DO: <Tool> <json>`, `SAY:`, `FAIL:`,
//! `STALL`; see `src/model/turn.rs`). Kept under this name so the tests read as before.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;

pub use borg::model::{Logged, ScriptedModel};

/// The server; stops when dropped. Everything else comes from [`ScriptedModel`].
pub struct FakeAnthropic(ScriptedModel);

impl FakeAnthropic {
    pub async fn start() -> Self {
        Self(
            ScriptedModel::start(borg::model::Script::default())
                .await
                .expect("the scripted model listens on 127.0.0.1"),
        )
    }
}

impl Deref for FakeAnthropic {
    type Target = ScriptedModel;

    fn deref(&self) -> &ScriptedModel {
        &self.0
    }
}
