//! borg as a systemd service (`Type=notify`): the sd_notify protocol, spoken by hand.
//!
//! systemd hands a notify service the address of a datagram socket in `NOTIFY_SOCKET` (a path,
//! or an abstract socket written with a leading `@`). Each datagram is newline-separated
//! `NAME=value` assignments. borg sends:
//!
//! - `READY=1` once the supervision tree is up (until then, `systemctl start` waits);
//! - `WATCHDOG=1` from the root supervisor's own mailbox loop (a [`Heartbeat`]) every half of
//!   `WATCHDOG_USEC`, so a daemon whose root supervisor is wedged (stuck in a handler,
//!   escalating) stops pinging and systemd restarts it after `WatchdogSec=`;
//! - `STOPPING=1` when it begins its ordered shutdown on SIGTERM or SIGINT;
//! - `RELOADING=1` when a self-update stops the tree to re-exec a new binary in the same
//!   process: not `STOPPING=1`, after which systemd would wait for the process to exit and
//!   kill it at `TimeoutStopSec=`. The re-exec'd binary sends `READY=1` again. As the tree
//!   stops, so do the pings; so the restart also stretches the watchdog (`WATCHDOG_USEC=`) to
//!   cover the shutdown and the new start, and every `READY=1` sets it back to the unit's value.
//!
//! No crate: the protocol is a few lines over [`UnixDatagram`]. Sends never block (the socket
//! is non-blocking; a full queue loses one notice, which systemd's own library does too) and
//! never stop the daemon: a service manager that went away is logged once.
//!
//! `NOTIFY_SOCKET` stays in the environment: a self-update's re-exec needs it. No process
//! borg starts can use it (`NotifyAccess=main`; agents get a cleared environment anyway).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use supervisors::{Heartbeat, SupervisorRef};

/// Where systemd listens for notices.
pub const NOTIFY_SOCKET_VAR: &str = "NOTIFY_SOCKET";
/// The watchdog timeout in microseconds, set by systemd when the unit has `WatchdogSec=`.
pub const WATCHDOG_USEC_VAR: &str = "WATCHDOG_USEC";
/// The process the watchdog is meant for; when set, any other process must not ping.
pub const WATCHDOG_PID_VAR: &str = "WATCHDOG_PID";
/// How much longer than the shutdown timeout a self-update's restart may go without a ping:
/// the new binary opens the store and starts the tree in this time.
const RESTART_ALLOWANCE: Duration = Duration::from_secs(60);

/// One assignment of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Startup (or a reload) is finished.
    Ready,
    /// The service is beginning to reload; `READY=1` ends it.
    Reloading,
    /// The service is beginning to shut down.
    Stopping,
    /// The keep-alive ping.
    Watchdog,
    /// Changes the watchdog timeout from now on.
    WatchdogUsec(u64),
    /// Free text for `systemctl status`; newlines become spaces (one line per assignment).
    Status(String),
}

impl Notice {
    fn assignment(&self) -> String {
        match self {
            Self::Ready => "READY=1".into(),
            Self::Reloading => "RELOADING=1".into(),
            Self::Stopping => "STOPPING=1".into(),
            Self::Watchdog => "WATCHDOG=1".into(),
            Self::WatchdogUsec(usec) => format!("WATCHDOG_USEC={usec}"),
            Self::Status(text) => format!("STATUS={}", text.replace(['\n', '\r'], " ")),
        }
    }
}

/// The datagram carrying `notices`: one assignment per line, each line ended by `\n`.
pub fn message(notices: &[Notice]) -> String {
    notices.iter().map(|n| n.assignment() + "\n").collect()
}

/// The socket address `NOTIFY_SOCKET` names: an absolute path, or `@name` for the abstract
/// socket `name` (Linux). Other forms (systemd's `vsock:`) are refused.
pub fn socket_addr(spec: &str) -> io::Result<SocketAddr> {
    if let Some(name) = spec.strip_prefix('@') {
        return abstract_addr(name.as_bytes());
    }
    if spec.starts_with('/') {
        return SocketAddr::from_pathname(spec);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{NOTIFY_SOCKET_VAR}={spec:?} is neither an absolute path nor an @abstract name"),
    ))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// How often to ping the watchdog, from the values of `WATCHDOG_USEC` and `WATCHDOG_PID`:
/// half the timeout, as sd_notify(3) advises, when there is one and it is meant for process
/// `me`.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let timeout = watchdog_timeout(usec, pid, me)?;
    Some(timeout / 2)
}

fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec))
}

/// The watchdog timeout systemd gave this process, if any.
fn watchdog_timeout_from_env() -> Option<Duration> {
    let var = |name| std::env::var(name).ok();
    watchdog_timeout(
        var(WATCHDOG_USEC_VAR).as_deref(),
        var(WATCHDOG_PID_VAR).as_deref(),
        std::process::id(),
    )
}

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Set after a failed send, so a manager that went away is logged once, not every ping.
    failing: AtomicBool,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; `None` when borg does not run under a service
    /// manager (or, logged, when the variable names no usable socket).
    pub fn from_env() -> Option<Self> {
        let spec = std::env::var(NOTIFY_SOCKET_VAR).ok()?;
        if spec.is_empty() {
            return None;
        }
        match Self::connect(&spec) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                tracing::warn!("systemd notifications are off: {e}");
                None
            }
        }
    }

    /// A notifier sending to `spec` (a path, or `@name` for an abstract socket).
    pub fn connect(spec: &str) -> io::Result<Self> {
        let addr = socket_addr(spec)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            addr,
            failing: AtomicBool::new(false),
        })
    }

    /// Sends `notices` in one datagram.
    pub fn notify(&self, notices: &[Notice]) -> io::Result<()> {
        let message = message(notices);
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        if sent != message.len() {
            return Err(io::Error::other("the notice was cut short"));
        }
        Ok(())
    }

    /// Sends `notices`, logging a failure (once, until a send succeeds again).
    pub fn tell(&self, notices: &[Notice]) {
        match self.notify(notices) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("systemd notifications work again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("cannot notify systemd ({NOTIFY_SOCKET_VAR}): {e}");
                }
            }
        }
    }
}

/// The tree is up: tells systemd `READY=1` and, when the unit has a watchdog meant for this
/// process, makes the root supervisor ping it every half of its timeout from its own mailbox
/// loop. The heartbeat is installed by a task of its own, so a root supervisor that is already
/// stuck delays nothing else (and, never pinging, gets the daemon restarted).
pub fn ready(notifier: Option<&Arc<Notifier>>, root: &SupervisorRef, status: &str) {
    ready_with_watchdog(notifier, root, status, watchdog_timeout_from_env());
}

/// [`ready`] with the watchdog timeout given rather than read from the environment.
pub fn ready_with_watchdog(
    notifier: Option<&Arc<Notifier>>,
    root: &SupervisorRef,
    status: &str,
    timeout: Option<Duration>,
) {
    let Some(notifier) = notifier else {
        return;
    };
    let mut notices = vec![Notice::Ready, Notice::Status(status.to_owned())];
    if let Some(timeout) = timeout {
        // Undoes the stretch of a self-update's restart (and repeats the unit's value after a
        // plain start, which changes nothing).
        notices.push(Notice::WatchdogUsec(micros(timeout)));
    }
    notifier.tell(&notices);
    let Some(timeout) = timeout else {
        return;
    };
    let pinger = notifier.clone();
    let heartbeat = Heartbeat::new(timeout / 2, move || pinger.tell(&[Notice::Watchdog]));
    let root = root.clone();
    tokio::spawn(async move {
        match root.set_heartbeat(Some(heartbeat)).await {
            Ok(()) => tracing::info!(
                "pinging the systemd watchdog every {:?} from the root supervisor",
                timeout / 2
            ),
            Err(e) => tracing::warn!("cannot install the systemd watchdog ping: {e}"),
        }
    });
}

/// The tree is about to stop: `STOPPING=1` for a shutdown, or `RELOADING=1` when the process
/// re-execs itself afterwards (a self-update), with the watchdog stretched to cover
/// `shutdown_limit` and the new binary's start.
pub fn stopping(notifier: Option<&Arc<Notifier>>, restarting: bool, shutdown_limit: Duration) {
    let Some(notifier) = notifier else {
        return;
    };
    if !restarting {
        notifier.tell(&[
            Notice::Stopping,
            Notice::Status("stopping the supervision tree in order".into()),
        ]);
        return;
    }
    let mut notices = vec![
        Notice::Reloading,
        Notice::Status("restarting into a new binary (self-update)".into()),
    ];
    if let Some(timeout) = watchdog_timeout_from_env() {
        let stretched = timeout.max(shutdown_limit + RESTART_ALLOWANCE);
        notices.push(Notice::WatchdogUsec(micros(stretched)));
    }
    notifier.tell(&notices);
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_assignment_per_line() {
        assert_eq!(message(&[Notice::Ready]), "READY=1\n");
        assert_eq!(
            message(&[
                Notice::Ready,
                Notice::Status("borg 0.1.0 running\nwith 8 actors".into()),
                Notice::WatchdogUsec(200_000),
            ]),
            "READY=1\nSTATUS=borg 0.1.0 running with 8 actors\nWATCHDOG_USEC=200000\n"
        );
        assert_eq!(message(&[Notice::Watchdog]), "WATCHDOG=1\n");
        assert_eq!(
            message(&[Notice::Stopping, Notice::Reloading]),
            "STOPPING=1\nRELOADING=1\n"
        );
        assert_eq!(message(&[]), "");
    }

    #[test]
    fn socket_addresses_are_paths_or_abstract_names() {
        let path = socket_addr("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let abs = socket_addr("@borg/notify").unwrap();
            assert_eq!(abs.as_abstract_name(), Some(&b"borg/notify"[..]));
            assert_eq!(abs.as_pathname(), None, "not a file");
        }
        for bad in ["relative/path", "vsock:2:1234", ""] {
            let err = socket_addr(bad).unwrap_err();
            assert!(err.to_string().contains("NOTIFY_SOCKET"), "{err}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_notice_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("borg-test-notify-{}", std::process::id());
        let listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap())
            .expect("abstract sockets work here");
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.notify(&[Notice::Ready]).unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_only_by_its_process() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(watchdog_interval(Some("200000"), None, 42), half);
        assert_eq!(watchdog_interval(Some("200000"), Some("42"), 42), half);
        assert_eq!(watchdog_interval(Some("200000"), Some("41"), 42), None);
        assert_eq!(watchdog_interval(Some("200000"), Some("junk"), 42), None);
        assert_eq!(watchdog_interval(None, Some("42"), 42), None);
        assert_eq!(watchdog_interval(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 42), None);
    }

    #[test]
    fn a_missing_manager_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.sock");
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        assert!(notifier.notify(&[Notice::Watchdog]).is_err());
        // Logged, not returned: the daemon carries on.
        notifier.tell(&[Notice::Watchdog]);
        assert!(notifier.failing.load(Ordering::Relaxed));
    }
}
