//! Failpoints: named places where a test can freeze the daemon, to crash it at an exact
//! step (the release train's crash tests). With `BORG_FAILPOINT=<name>` in the environment
//! (for a daemon run as a child process), or [`arm`]ed in the test's own process, the daemon
//! logs `failpoint <name> reached` when it gets there and waits forever; otherwise (always,
//! in normal use) a failpoint does nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that names the failpoint to stop at.
pub const FAILPOINT_VAR: &str = "BORG_FAILPOINT";

static ARMED: Mutex<Option<String>> = Mutex::new(None);
static REACHED: AtomicBool = AtomicBool::new(false);

/// Arms failpoint `name` in this process (`None` disarms), and forgets whether one was
/// reached.
pub fn arm(name: Option<&str>) {
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = name.map(str::to_owned);
    REACHED.store(false, Ordering::SeqCst);
}

/// Whether the armed failpoint was reached since it was armed.
pub fn reached() -> bool {
    REACHED.load(Ordering::SeqCst)
}

/// Stops here forever when failpoint `name` is armed.
pub async fn failpoint(name: &str) {
    let armed = ARMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_deref()
        .is_some_and(|a| a == name);
    if armed || std::env::var(FAILPOINT_VAR).is_ok_and(|v| v == name) {
        tracing::warn!("failpoint {name} reached; waiting here until killed");
        REACHED.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
}
