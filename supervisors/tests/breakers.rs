//! Circuit breakers as a supervisor policy, end to end.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use supervisors::{
    Backoff, BreakerPolicy, BreakerState, Event, Intensity, Introspection, Status, Strategy,
    SupervisorRef, SupervisorSpec,
};

fn policy() -> BreakerPolicy {
    BreakerPolicy {
        threshold: 3,
        window: Duration::from_secs(60),
        cool_down: Duration::from_millis(200),
        cool_down_max: Duration::from_secs(5),
        factor: 2.0,
        probe_uptime: Duration::from_millis(150),
    }
}

async fn supervised(
    lab: &Lab,
    max_restarts: u32,
) -> (SupervisorRef, Introspection, tokio::task::JoinHandle<()>) {
    let introspection = Introspection::new();
    let spec = SupervisorSpec {
        strategy: Strategy::OneForOne,
        intensity: Intensity {
            max_restarts,
            period: Duration::from_secs(60),
        },
        children: vec![
            lab.spec("flaky").breaker(policy()).backoff(Backoff::none()),
            lab.spec("steady"),
        ],
    };
    let (sup, join) = SupervisorRef::spawn_root("root", spec, introspection.clone())
        .await
        .unwrap();
    (sup, introspection, join)
}

async fn breaker_of(sup: &SupervisorRef) -> (Status, Option<BreakerState>) {
    let info = sup.which_children().await.unwrap();
    (info[0].status, info[0].breaker)
}

fn breaker_events(introspection: &Introspection) -> Vec<(BreakerState, Instant)> {
    // Events carry wall-clock ms; the tests only compare their order and gaps.
    introspection
        .recent_events()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Breaker { path, state } if path == "root/flaky" => Some((
                state,
                Instant::now() - Duration::from_millis(supervisors::snapshot::now_ms() - r.at_ms),
            )),
            _ => None,
        })
        .collect()
}

/// Kills the current incarnation of `flaky` `n` times, waiting for each replacement.
async fn fail(sup: &SupervisorRef, n: usize) {
    for _ in 0..n {
        let old = id_of(sup, "flaky").await;
        cell_of(sup, "flaky").await.unwrap().kill();
        eventually("flaky handled the failure", || async {
            cell_of(sup, "flaky").await.map(|c| c.get_id()) != Some(old)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_exactly_at_threshold_and_parks_without_escalating() {
    let lab = Lab::default();
    // Two restarts fit the intensity; had parking counted as a third, the supervisor would die.
    let (sup, introspection, join) = supervised(&lab, 2).await;
    fail(&sup, 2).await;
    assert_eq!(
        breaker_of(&sup).await,
        (Status::Running, Some(BreakerState::Closed))
    );
    fail(&sup, 1).await;
    assert_eq!(
        breaker_of(&sup).await,
        (Status::Parked, Some(BreakerState::Open))
    );
    assert!(
        cell_of(&sup, "flaky").await.is_none(),
        "parked, not restarted"
    );
    assert!(!join.is_finished(), "a parked child does not escalate");
    let info = introspection.get("root/flaky").unwrap();
    assert_eq!(
        (info.status, info.breaker),
        (Status::Parked, Some(BreakerState::Open))
    );
    assert!(
        cell_of(&sup, "steady").await.is_some(),
        "siblings untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_probes_after_cool_down_and_closes_when_the_probe_survives() {
    let lab = Lab::default();
    let (sup, introspection, _join) = supervised(&lab, 10).await;
    fail(&sup, 3).await;
    eventually("probe started (half-open)", || async {
        breaker_of(&sup).await == (Status::Running, Some(BreakerState::HalfOpen))
    })
    .await;
    eventually("closed after the probe uptime", || async {
        breaker_of(&sup).await.1 == Some(BreakerState::Closed)
    })
    .await;
    let states: Vec<BreakerState> = breaker_events(&introspection)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        states,
        vec![
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
    // Closed again means counting starts over: two failures restart as usual.
    fail(&sup, 2).await;
    assert_eq!(breaker_of(&sup).await.0, Status::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_reopens_with_a_longer_cool_down() {
    let lab = Lab::default();
    let (sup, introspection, _join) = supervised(&lab, 10).await;
    fail(&sup, 3).await;
    // Every probe fails to start.
    lab.fail_starts("flaky", true);
    eventually("two failed probes", || async {
        breaker_events(&introspection)
            .iter()
            .filter(|(s, _)| *s == BreakerState::HalfOpen)
            .count()
            >= 2
    })
    .await;
    let events = breaker_events(&introspection);
    let opens: Vec<Instant> = events
        .iter()
        .filter(|(s, _)| *s == BreakerState::Open)
        .map(|(_, t)| *t)
        .collect();
    let probes: Vec<Instant> = events
        .iter()
        .filter(|(s, _)| *s == BreakerState::HalfOpen)
        .map(|(_, t)| *t)
        .collect();
    // First open period is the base cool-down (200 ms), the next one doubled (400 ms).
    let first = probes[0].duration_since(opens[0]);
    let second = probes[1].duration_since(opens[1]);
    assert!(first >= Duration::from_millis(190), "{first:?}");
    assert!(second >= Duration::from_millis(390), "{second:?}");
    assert!(second > first);
    assert_eq!(breaker_of(&sup).await.0, Status::Parked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_force_a_breaker_open_and_closed() {
    let lab = Lab::default();
    let (sup, _, _join) = supervised(&lab, 10).await;
    id_of(&sup, "flaky").await;
    sup.force_breaker("flaky", true).await.unwrap();
    assert_eq!(
        breaker_of(&sup).await,
        (Status::Parked, Some(BreakerState::ForcedOpen))
    );
    assert_eq!(
        lab.alive.load(Ordering::SeqCst),
        1,
        "the forced-open child was stopped"
    );
    // No probe while forced open, however long the cool-down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        breaker_of(&sup).await,
        (Status::Parked, Some(BreakerState::ForcedOpen))
    );
    sup.force_breaker("flaky", false).await.unwrap();
    assert_eq!(
        breaker_of(&sup).await,
        (Status::Running, Some(BreakerState::Closed))
    );
    assert_eq!(lab.alive.load(Ordering::SeqCst), 2);
    // A child without a breaker policy can be isolated too.
    sup.force_breaker("steady", true).await.unwrap();
    assert!(cell_of(&sup, "steady").await.is_none());
}
