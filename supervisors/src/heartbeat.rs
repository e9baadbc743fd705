//! A supervisor's heartbeat: a callback it calls now and then from its own mailbox loop, as a
//! sign that it is alive *and working*. An outside watchdog (systemd's, a container health
//! check, a test) that hears the beats learns more than "the process exists": a supervisor
//! stuck in a handler (a child whose start never returns, a child that does not stop) or busy
//! escalating or shutting down handles no message, so it does not beat.
//!
//! The beat is a timer the supervisor sets for itself, one at a time: while the supervisor is
//! wedged a single beat waits in its mailbox, never a growing pile; once it recovers it beats
//! and sets the next one. Setting a new heartbeat (or none) bumps a generation, so the timer
//! of the old one is ignored when it fires.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a supervisor calls, and how often, while it is healthy. See
/// [`SupervisorRef::set_heartbeat`](crate::SupervisorRef::set_heartbeat).
#[derive(Clone)]
pub struct Heartbeat {
    every: Duration,
    /// Runs inside the supervisor's handler: it must be quick, must not block and must not
    /// panic (a panic fails the supervisor like any failing handler).
    beat: Arc<dyn Fn() + Send + Sync>,
}

impl Heartbeat {
    /// Calls `beat` once when installed and then every `every` while the supervisor handles
    /// messages.
    pub fn new(every: Duration, beat: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            every,
            beat: Arc::new(beat),
        }
    }

    /// The interval between two beats.
    pub fn every(&self) -> Duration {
        self.every
    }
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// Calls the callback (from the supervisor's handler).
    pub(crate) fn beat(&self) {
        (self.beat)()
    }
}
