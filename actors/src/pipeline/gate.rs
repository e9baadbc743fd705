//! The pipeline's breaker on its sandbox: when agents cannot start because the sandbox itself
//! is gone (the Docker engine stopped or restarted for an upgrade), every task waits at this
//! gate instead of backing off on its own.
//!
//! Without it each task would notice the outage by itself, fail its step, back off, try again
//! and log, and the admin would learn nothing until work silently resumed minutes after the
//! engine came back. With it:
//!
//! - the first task that meets the outage trips the gate ([`SandboxGate::trip`]): the gate
//!   opens, and the admin chat is told once, with the reason;
//! - every task waits at the gate before its next agent or test run ([`SandboxGate::closed`]);
//!   no attempt is counted, since nothing ran;
//! - the gate probes the sandbox ([`SandboxProbe`]) with a growing interval (1 s doubling to
//!   30 s); the first good probe closes it, tells the admin, and every waiting task goes on
//!   at once.
//!
//! A sandbox that probes healthy but still refuses runs (an agent image deleted, say) would
//! open and close the gate over and over: the admin hears of an outage at most once per
//! [`QUIET`], so a flapping sandbox cannot flood the admin chat.
//!
//! Chat runs do not pass the gate: a chat answers with an honest error if it cannot run an
//! agent, and everything else in the chat (commands, other groups) is untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::ports::Announcer;

/// Is the sandbox able to run agents again?
pub trait SandboxProbe: Send + Sync + 'static {
    /// `Err` with what is still wrong.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// At most one outage announcement per this long.
pub const QUIET: Duration = Duration::from_secs(600);

/// See the module docs.
pub struct SandboxGate {
    /// `Some(reason)` while open.
    state: watch::Sender<Option<String>>,
    probe: Arc<dyn SandboxProbe>,
    /// The announcer and the admin chat, when there is one.
    admin: Option<(Arc<dyn Announcer>, String)>,
    first_probe: Duration,
    max_probe: Duration,
    /// When the last outage was announced, and whether its end is owed to the admin.
    announced: Mutex<(Option<Instant>, bool)>,
}

impl SandboxGate {
    pub fn new(
        probe: Arc<dyn SandboxProbe>,
        admin: Option<(Arc<dyn Announcer>, String)>,
    ) -> Arc<Self> {
        Self::with_probe_interval(
            probe,
            admin,
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
    }

    /// [`SandboxGate::new`] probing first after `first`, doubling up to `max`.
    pub fn with_probe_interval(
        probe: Arc<dyn SandboxProbe>,
        admin: Option<(Arc<dyn Announcer>, String)>,
        first: Duration,
        max: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: watch::channel(None).0,
            probe,
            admin,
            first_probe: first,
            max_probe: max.max(first),
            announced: Mutex::new((None, false)),
        })
    }

    /// Why the gate is open, or `None` when work may go on.
    pub fn open_reason(&self) -> Option<String> {
        self.state.borrow().clone()
    }

    /// Waits until the gate is closed (at once when it is).
    pub async fn closed(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`: this cannot fail while we are borrowed.
        let _ = rx.wait_for(Option::is_none).await;
    }

    /// The sandbox failed for a reason of its own: open the gate (if it is not open yet),
    /// tell the admin, and probe until the sandbox is back. Needs a tokio runtime.
    pub fn trip(self: &Arc<Self>, reason: &str) {
        let opened = self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            *state = Some(reason.to_owned());
            true
        });
        if !opened {
            return;
        }
        tracing::error!("pipeline paused: the agent sandbox is unavailable: {reason}");
        crate::metrics::sandbox_gate(true);
        let tell = {
            let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
            let quiet = announced.0.is_some_and(|at| at.elapsed() < QUIET);
            if !quiet {
                *announced = (Some(Instant::now()), true);
            }
            !quiet
        };
        if tell {
            self.tell(format!(
                "⏸ Pipeline paused: agents cannot run ({reason}). Tasks wait without spending \
                 attempts and go on by themselves when the sandbox is back; chat keeps working."
            ));
        }
        let gate = self.clone();
        tokio::spawn(async move { gate.probe_until_back().await });
    }

    async fn probe_until_back(&self) {
        let mut wait = self.first_probe;
        loop {
            tokio::time::sleep(wait).await;
            match self.probe.check().await {
                Ok(()) => break,
                Err(why) => {
                    tracing::debug!("the agent sandbox is still unavailable: {why}");
                    wait = (wait * 2).min(self.max_probe);
                }
            }
        }
        self.state.send_replace(None);
        crate::metrics::sandbox_gate(false);
        tracing::info!("pipeline resumed: the agent sandbox is back");
        let owed = std::mem::take(&mut self.announced.lock().unwrap_or_else(|p| p.into_inner()).1);
        if owed {
            self.tell("▶ Pipeline resumed: the agent sandbox is back.".into());
        }
    }

    fn tell(&self, text: String) {
        if let Some((announcer, chat)) = &self.admin {
            announcer.announce(chat, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Engine {
        down: AtomicBool,
        probes: AtomicUsize,
    }

    impl SandboxProbe for Engine {
        fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            let down = self.down.load(Ordering::SeqCst);
            Box::pin(async move {
                if down {
                    Err("engine down".into())
                } else {
                    Ok(())
                }
            })
        }
    }

    #[derive(Default)]
    struct Admin(Mutex<Vec<(String, String)>>);

    impl Announcer for Admin {
        fn announce(&self, chat: &str, text: String) {
            self.0.lock().unwrap().push((chat.to_owned(), text));
        }
    }

    fn gate(engine: &Arc<Engine>, admin: &Arc<Admin>) -> Arc<SandboxGate> {
        SandboxGate::with_probe_interval(
            engine.clone(),
            Some((admin.clone(), "tg:1".into())),
            Duration::from_millis(10),
            Duration::from_millis(40),
        )
    }

    #[tokio::test]
    async fn an_outage_is_announced_once_and_its_end_releases_every_waiter() {
        let (engine, admin) = (Arc::new(Engine::default()), Arc::new(Admin::default()));
        engine.down.store(true, Ordering::SeqCst);
        let gate = gate(&engine, &admin);
        gate.trip("engine unreachable");
        gate.trip("engine unreachable again");
        assert_eq!(gate.open_reason().as_deref(), Some("engine unreachable"));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.closed().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "held while down");
        assert!(
            engine.probes.load(Ordering::SeqCst) >= 2,
            "probed meanwhile"
        );

        engine.down.store(false, Ordering::SeqCst);
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("released when the engine is back")
                .unwrap();
        }
        assert_eq!(gate.open_reason(), None);
        let told = admin.0.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "paused once, resumed once: {told:?}");
        assert!(told[0].1.contains("paused") && told[0].1.contains("engine unreachable"));
        assert!(told[1].1.contains("resumed"));
        assert!(told.iter().all(|(chat, _)| chat == "tg:1"));
    }

    #[tokio::test]
    async fn a_flapping_sandbox_does_not_flood_the_admin() {
        let (engine, admin) = (Arc::new(Engine::default()), Arc::new(Admin::default()));
        let gate = gate(&engine, &admin);
        for _ in 0..5 {
            // Probes healthy, yet runs keep failing: open, closed by the probe, open again.
            gate.trip("the agent image is missing");
            tokio::time::timeout(Duration::from_secs(5), gate.closed())
                .await
                .unwrap();
        }
        let told = admin.0.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "one outage told, and its end: {told:?}");
    }

    #[tokio::test]
    async fn a_closed_gate_lets_work_through_at_once() {
        let (engine, admin) = (Arc::new(Engine::default()), Arc::new(Admin::default()));
        let gate = gate(&engine, &admin);
        tokio::time::timeout(Duration::from_millis(100), gate.closed())
            .await
            .expect("not held");
        assert_eq!(engine.probes.load(Ordering::SeqCst), 0);
        assert!(admin.0.lock().unwrap().is_empty());
    }
}
