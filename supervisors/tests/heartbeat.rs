//! A supervisor's heartbeat beats while its mailbox loop runs, and only then: not while a
//! handler is stuck, not while it escalates or shuts down, not after it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::{
    ChildSpec, Heartbeat, Intensity, Introspection, Shutdown, Strategy, SupervisorRef,
    SupervisorSpec,
};
use tokio::sync::Notify;

const EVERY: Duration = Duration::from_millis(20);

/// Counts beats.
#[derive(Clone, Default)]
struct Beats(Arc<AtomicUsize>);

impl Beats {
    fn heartbeat(&self) -> Heartbeat {
        let count = self.0.clone();
        Heartbeat::new(EVERY, move || {
            count.fetch_add(1, Ordering::SeqCst);
        })
    }

    fn now(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits until at least `more` beats came after `since` (generous: the build machine is
    /// loaded), failing after 5 s.
    async fn more_than(&self, since: usize, more: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.now() < since + more {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} beats after {since} within 5 s",
                self.now()
            );
            tokio::time::sleep(EVERY).await;
        }
    }

    /// Asserts that no beat comes for ten intervals.
    async fn silent(&self, why: &str) {
        let before = self.now();
        tokio::time::sleep(EVERY * 10).await;
        assert_eq!(self.now(), before, "a beat came {why}");
    }
}

/// Two rendezvous points: `entered` when the actor reached the blocking step, `gate` to let
/// it go on.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    open: Arc<Notify>,
}

impl Gate {
    async fn block(&self) {
        self.entered.notify_one();
        self.open.notified().await;
    }
}

/// Blocks in `pre_start` until its gate opens: a child whose start never returns, which holds
/// its supervisor's handler (starting a child awaits its `pre_start`).
struct SlowStart;

impl Actor for SlowStart {
    type Msg = ();
    type State = ();
    type Arguments = Gate;

    async fn pre_start(&self, _: ActorRef<()>, gate: Gate) -> Result<(), ActorProcessingErr> {
        gate.block().await;
        Ok(())
    }
}

/// Blocks in `post_stop` until its gate opens: a child that takes long to stop.
struct SlowStop;

impl Actor for SlowStop {
    type Msg = ();
    type State = Gate;
    type Arguments = Gate;

    async fn pre_start(&self, _: ActorRef<()>, gate: Gate) -> Result<Gate, ActorProcessingErr> {
        Ok(gate)
    }

    async fn post_stop(&self, _: ActorRef<()>, gate: &mut Gate) -> Result<(), ActorProcessingErr> {
        gate.block().await;
        Ok(())
    }
}

/// Fails on every message.
struct Crasher;

impl Actor for Crasher {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("boom".into())
    }
}

async fn root(spec: SupervisorSpec) -> (SupervisorRef, tokio::task::JoinHandle<()>) {
    SupervisorRef::spawn_root("root", spec, Introspection::new())
        .await
        .expect("root starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_at_its_interval_until_removed_or_replaced() {
    let (sup, join) = root(SupervisorSpec::default()).await;
    let beats = Beats::default();
    sup.set_heartbeat(Some(beats.heartbeat())).await.unwrap();
    assert_eq!(beats.now(), 1, "the first beat comes before the answer");
    beats.more_than(1, 5).await;

    // Replaced: the old heartbeat's pending timer is ignored, the new one beats.
    let other = Beats::default();
    sup.set_heartbeat(Some(other.heartbeat())).await.unwrap();
    beats.silent("from a replaced heartbeat").await;
    other.more_than(1, 3).await;

    sup.set_heartbeat(None).await.unwrap();
    other.silent("after the heartbeat was removed").await;
    sup.shutdown().await;
    join.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_stuck_in_a_handler_stops_beating_and_beats_again_when_it_recovers() {
    let (sup, join) = root(SupervisorSpec::default()).await;
    let beats = Beats::default();
    sup.set_heartbeat(Some(beats.heartbeat())).await.unwrap();
    beats.more_than(1, 3).await;

    let gate = Gate::default();
    let starting = {
        let (sup, gate) = (sup.clone(), gate.clone());
        tokio::spawn(async move {
            sup.start_child(ChildSpec::actor("stuck", move || (SlowStart, gate.clone())))
                .await
        })
    };
    gate.entered.notified().await;
    beats
        .silent("while the supervisor was stuck starting a child")
        .await;

    gate.open.notify_one();
    starting
        .await
        .unwrap()
        .expect("the child starts in the end");
    let after = beats.now();
    beats.more_than(after, 3).await;
    sup.shutdown().await;
    join.await.unwrap();
    beats.silent("after the supervisor stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_beat_while_shutting_down() {
    let gate = Gate::default();
    let spec = SupervisorSpec {
        children: vec![{
            let gate = gate.clone();
            ChildSpec::actor("slow", move || (SlowStop, gate.clone())).shutdown(Shutdown::Infinity)
        }],
        ..SupervisorSpec::default()
    };
    let (sup, join) = root(spec).await;
    let beats = Beats::default();
    sup.set_heartbeat(Some(beats.heartbeat())).await.unwrap();
    beats.more_than(1, 3).await;

    let stopping = tokio::spawn(async move { sup.shutdown().await });
    gate.entered.notified().await;
    beats.silent("while the supervisor was shutting down").await;
    gate.open.notify_one();
    stopping.await.unwrap();
    join.await.unwrap();
    beats.silent("after the supervisor stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_beat_while_escalating_nor_after() {
    let gate = Gate::default();
    let spec = SupervisorSpec {
        strategy: Strategy::OneForAll,
        // No restart allowed: the first failure escalates.
        intensity: Intensity {
            max_restarts: 0,
            period: Duration::from_secs(60),
        },
        children: vec![
            {
                let gate = gate.clone();
                ChildSpec::actor("slow", move || (SlowStop, gate.clone()))
                    .shutdown(Shutdown::Infinity)
            },
            ChildSpec::actor("crasher", || (Crasher, ())),
        ],
    };
    let (sup, join) = root(spec).await;
    let beats = Beats::default();
    sup.set_heartbeat(Some(beats.heartbeat())).await.unwrap();
    beats.more_than(1, 3).await;

    let crasher = sup.child("crasher").await.unwrap().expect("crasher runs");
    crasher.send_message(()).unwrap();
    // Escalating stops every child in order; the slow one holds the supervisor there.
    gate.entered.notified().await;
    beats.silent("while the supervisor was escalating").await;
    gate.open.notify_one();
    join.await.unwrap();
    beats.silent("after the supervisor escalated").await;
}
