//! OTP's `supervisor_SUITE` scenarios, ported (numbers follow shared/notes/actors.md §2.2).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use supervisors::{
    Backoff, ChildCounts, ChildSpec, Event, Intensity, Introspection, Restart, Shutdown, Status,
    Strategy, SupervisorError, SupervisorRef, SupervisorSpec,
};

fn intensity(max_restarts: u32, period_ms: u64) -> Intensity {
    Intensity {
        max_restarts,
        period: Duration::from_millis(period_ms),
    }
}

async fn root(
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec>,
) -> (SupervisorRef, Introspection, tokio::task::JoinHandle<()>) {
    let introspection = Introspection::new();
    let spec = SupervisorSpec {
        strategy,
        intensity,
        children,
    };
    let (sup, join) = SupervisorRef::spawn_root("root", spec, introspection.clone())
        .await
        .expect("root starts");
    (sup, introspection, join)
}

fn counts(specs: usize, active: usize, supervisors: usize, workers: usize) -> ChildCounts {
    ChildCounts {
        specs,
        active,
        supervisors,
        workers,
    }
}

fn escalated(introspection: &Introspection, path: &str) -> bool {
    introspection
        .recent_events()
        .iter()
        .any(|r| matches!(&r.event, Event::Escalated { path: p, .. } if p == path))
}

// 1. permanent_normal / permanent_shutdown
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_child_is_restarted_after_normal_and_shutdown_exits() {
    let lab = Lab::default();
    let (sup, _, _join) = root(
        Strategy::OneForOne,
        intensity(2, 3_600_000),
        vec![lab.spec("c")],
    )
    .await;
    let first = id_of(&sup, "c").await;
    tell(&sup, "c", WorkerMsg::ExitNormal).await;
    let second = replaced(&sup, "c", first).await;
    cell_of(&sup, "c")
        .await
        .unwrap()
        .stop(Some("shutdown".into()));
    replaced(&sup, "c", second).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
}

// 2. transient_normal / transient_shutdown
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_child_that_exits_normally_keeps_its_spec_and_restarts_on_request() {
    let lab = Lab::default();
    let spec = lab.spec("c").restart(Restart::Transient);
    let (sup, _, _join) = root(Strategy::OneForOne, intensity(2, 3_600_000), vec![spec]).await;
    id_of(&sup, "c").await;
    tell(&sup, "c", WorkerMsg::ExitNormal).await;
    eventually("transient child stopped", || async {
        sup.count_children().await.unwrap() == counts(1, 0, 0, 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cell_of(&sup, "c").await.is_none(), "not restarted");
    assert!(sup.restart_child("c").await.unwrap().is_some());
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
}

// 3. transient_abnormal
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_child_that_panics_is_restarted() {
    quiet_panics();
    let lab = Lab::default();
    let spec = lab.spec("c").restart(Restart::Transient);
    let (sup, _, _join) = root(Strategy::OneForOne, intensity(2, 3_600_000), vec![spec]).await;
    let first = id_of(&sup, "c").await;
    tell(&sup, "c", WorkerMsg::Panic).await;
    replaced(&sup, "c", first).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
}

// 4. temporary_normal / temporary_abnormal
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_children_are_never_restarted_and_their_specs_are_dropped() {
    quiet_panics();
    let lab = Lab::default();
    let specs = vec![
        lab.spec("a").restart(Restart::Temporary),
        lab.spec("b").restart(Restart::Temporary),
    ];
    let (sup, _, _join) = root(Strategy::OneForOne, intensity(2, 3_600_000), specs).await;
    tell(&sup, "a", WorkerMsg::ExitNormal).await;
    tell(&sup, "b", WorkerMsg::Panic).await;
    eventually("both specs gone", || async {
        sup.count_children().await.unwrap() == counts(0, 0, 0, 0)
    })
    .await;
    assert_eq!(lab.starts.load(Ordering::SeqCst), 2, "no restart attempted");
}

// 5. one_for_one
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_replaces_only_the_dead_child_and_gives_up_past_intensity() {
    let lab = Lab::default();
    let (sup, introspection, join) = root(
        Strategy::OneForOne,
        intensity(2, 3_600_000),
        vec![lab.spec("c1").backoff(Backoff::none()), lab.spec("c2")],
    )
    .await;
    let c1 = id_of(&sup, "c1").await;
    let c2 = id_of(&sup, "c2").await;
    cell_of(&sup, "c1").await.unwrap().kill();
    let c1b = replaced(&sup, "c1", c1).await;
    assert_eq!(id_of(&sup, "c2").await, c2, "c2 untouched");
    cell_of(&sup, "c1").await.unwrap().kill();
    let c1c = replaced(&sup, "c1", c1b).await;
    cell_of(&sup, "c1").await.unwrap().kill();
    let _ = c1c;
    tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .expect("supervisor exits after the third restart in the period")
        .unwrap();
    assert!(escalated(&introspection, "root"));
    assert_eq!(
        lab.alive.load(Ordering::SeqCst),
        0,
        "siblings were stopped too"
    );
}

// 6. one_for_all
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_every_child_and_gives_up_past_intensity() {
    let lab = Lab::default();
    let (sup, introspection, join) = root(
        Strategy::OneForAll,
        intensity(2, 3_600_000),
        vec![
            lab.spec("c1").backoff(Backoff::none()),
            lab.spec("c2").backoff(Backoff::none()),
        ],
    )
    .await;
    let c1 = id_of(&sup, "c1").await;
    let c2 = id_of(&sup, "c2").await;
    cell_of(&sup, "c1").await.unwrap().kill();
    let c1b = replaced(&sup, "c1", c1).await;
    let c2b = replaced(&sup, "c2", c2).await;
    assert_eq!(
        lab.alive.load(Ordering::SeqCst),
        2,
        "no old incarnation alive"
    );
    assert!(
        lab.log().contains(&"stop:c2".to_string()),
        "c2 was stopped gracefully"
    );
    cell_of(&sup, "c2").await.unwrap().kill();
    replaced(&sup, "c1", c1b).await;
    replaced(&sup, "c2", c2b).await;
    cell_of(&sup, "c1").await.unwrap().kill();
    tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .expect("supervisor dies on the third failure")
        .unwrap();
    assert!(escalated(&introspection, "root"));
    assert_eq!(lab.alive.load(Ordering::SeqCst), 0);
}

// 7. rest_for_one
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let lab = Lab::default();
    let (sup, _, _join) = root(
        Strategy::RestForOne,
        intensity(2, 3_600_000),
        vec![lab.spec("c1"), lab.spec("c2"), lab.spec("c3")],
    )
    .await;
    let (c1, c2, c3) = (
        id_of(&sup, "c1").await,
        id_of(&sup, "c2").await,
        id_of(&sup, "c3").await,
    );
    cell_of(&sup, "c2").await.unwrap().kill();
    replaced(&sup, "c2", c2).await;
    replaced(&sup, "c3", c3).await;
    assert_eq!(id_of(&sup, "c1").await, c1, "c1 untouched");
    assert_eq!(lab.alive.load(Ordering::SeqCst), 3);
}

// 8. one_for_one_escalation
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_restarts_are_retried_until_intensity_then_everything_stops() {
    let lab = Lab::default();
    let (sup, introspection, join) = root(
        Strategy::OneForOne,
        intensity(4, 3_600_000),
        vec![lab.spec("c1").backoff(Backoff::none()), lab.spec("sibling")],
    )
    .await;
    id_of(&sup, "c1").await;
    lab.fail_starts("c1", true);
    let before = lab.starts.load(Ordering::SeqCst);
    cell_of(&sup, "c1").await.unwrap().kill();
    tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .expect("supervisor gives up")
        .unwrap();
    // One failure plus restart attempts: 5 restarts exceed 4 in the period.
    assert_eq!(
        lab.starts.load(Ordering::SeqCst) - before,
        4,
        "retried up to the intensity"
    );
    assert!(escalated(&introspection, "root"));
    assert_eq!(lab.alive.load(Ordering::SeqCst), 0, "sibling stopped too");
}

// 9. one_for_all_other_child_fails_restart
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_failing_during_a_group_restart_leaks_no_actor() {
    let lab = Lab::default();
    let slow = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(20),
        jitter: 0.0,
        ..Backoff::default()
    };
    let (sup, _, _join) = root(
        Strategy::OneForAll,
        intensity(50, 3_600_000),
        vec![lab.spec("c1").backoff(slow), lab.spec("c2").backoff(slow)],
    )
    .await;
    let c1 = id_of(&sup, "c1").await;
    lab.fail_starts("c2", true);
    cell_of(&sup, "c1").await.unwrap().kill();
    eventually("a few failed group restarts", || async {
        lab.starts.load(Ordering::SeqCst) >= 8
    })
    .await;
    // While c2 cannot start, c1 never stays up alone.
    let children = sup.which_children().await.unwrap();
    assert!(
        children.iter().all(|c| c.status == Status::Restarting),
        "{children:?}"
    );
    assert!(lab.alive.load(Ordering::SeqCst) <= 1);
    lab.fail_starts("c2", false);
    replaced(&sup, "c1", c1).await;
    id_of(&sup, "c2").await;
    eventually("exactly two alive", || async {
        lab.alive.load(Ordering::SeqCst) == 2
    })
    .await;
}

// 10. multiple_restarts
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_spread_out_in_time_never_exceed_a_sliding_window() {
    let lab = Lab::default();
    let (sup, _, join) = root(Strategy::OneForOne, intensity(1, 300), vec![lab.spec("c")]).await;
    let mut current = id_of(&sup, "c").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cell_of(&sup, "c").await.unwrap().kill();
        current = replaced(&sup, "c", current).await;
    }
    assert!(!join.is_finished(), "supervisor survives");
}

// 11. temporary_bystander
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_bystander_is_not_restarted_and_does_not_burn_intensity() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let lab = Lab::default();
        let (sup, _, join) = root(
            strategy,
            intensity(1, 300_000),
            vec![
                lab.spec("perm"),
                lab.spec("temp").restart(Restart::Temporary),
            ],
        )
        .await;
        let perm = id_of(&sup, "perm").await;
        cell_of(&sup, "perm").await.unwrap().kill();
        replaced(&sup, "perm", perm).await;
        let ids: Vec<String> = sup
            .which_children()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec!["perm".to_string()], "{strategy:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !join.is_finished(),
            "{strategy:?}: one restart is within intensity 1"
        );
        sup.shutdown().await;
    }
}

// 12. sup_stop_timeout / brutal_kill / order_of_children
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_in_reverse_order_and_kills_one_that_hangs() {
    let lab = Lab::default();
    let timeout = Shutdown::Timeout(Duration::from_millis(300));
    let (sup, _, join) = root(
        Strategy::OneForOne,
        intensity(1, 5000),
        vec![
            lab.spec("c1").shutdown(timeout),
            lab.spec("c2").shutdown(timeout),
            lab.spec("c3").shutdown(timeout),
            lab.spec("brutal").shutdown(Shutdown::BrutalKill),
            lab.spec("patient").shutdown(Shutdown::Infinity),
        ],
    )
    .await;
    tell(&sup, "c2", WorkerMsg::Busy(Duration::from_secs(30))).await;
    tell(&sup, "patient", WorkerMsg::Busy(Duration::from_millis(500))).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    sup.shutdown().await;
    join.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "infinity waited for the busy child"
    );
    let log = lab.log();
    let stops: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("stop:"))
        .map(String::as_str)
        .collect();
    // Reverse start order; `brutal` was killed (no post_stop) and so was `c2`, which ignored
    // the stop request and was killed after its timeout.
    assert_eq!(stops, vec!["stop:patient", "stop:c3", "stop:c1"]);
    for name in ["c1", "c2", "c3", "brutal", "patient"] {
        assert!(
            log.contains(&format!("drop:{name}")),
            "{name} is gone: {log:?}"
        );
    }
    assert_eq!(lab.alive.load(Ordering::SeqCst), 0);
}

// 13. hanging_restart_loop (OTP-9549)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_stays_responsive_while_a_child_keeps_failing_to_restart() {
    let lab = Lab::default();
    let backoff = Backoff {
        initial: Duration::from_millis(30),
        max: Duration::from_millis(30),
        jitter: 0.0,
        ..Backoff::default()
    };
    let (sup, _, join) = root(
        Strategy::OneForOne,
        intensity(1000, 10_000),
        vec![lab.spec("c").backoff(backoff)],
    )
    .await;
    id_of(&sup, "c").await;
    lab.fail_starts("c", true);
    cell_of(&sup, "c").await.unwrap().kill();
    eventually("restart attempts keep failing", || async {
        lab.starts.load(Ordering::SeqCst) >= 4
    })
    .await;
    let info = sup.which_children().await.unwrap();
    assert_eq!(info[0].status, Status::Restarting);
    assert_eq!(
        sup.restart_child("c").await,
        Err(SupervisorError::Restarting("c".into()))
    );
    assert_eq!(
        sup.delete_child("c").await,
        Err(SupervisorError::Restarting("c".into()))
    );
    sup.terminate_child("c").await.unwrap();
    let attempts = lab.starts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        lab.starts.load(Ordering::SeqCst),
        attempts,
        "terminating cancelled the restart loop"
    );
    assert_eq!(
        sup.which_children().await.unwrap()[0].status,
        Status::Stopped
    );
    sup.delete_child("c").await.unwrap();
    sup.shutdown().await;
    join.await.unwrap();
}

// 15. simple_one_for_one_scale_many_temporary_children + sup_start_ignore_child
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_dynamic_children_scale_linearly() {
    let lab = Lab::default();
    let (sup, introspection, _join) = root(Strategy::OneForOne, intensity(1, 5000), vec![]).await;
    let mut timings = Vec::new();
    for n in [1_000usize, 10_000] {
        let started = Instant::now();
        for i in 0..n {
            sup.start_child(lab.spec(&format!("t{i}")).restart(Restart::Temporary))
                .await
                .unwrap();
        }
        assert_eq!(sup.count_children().await.unwrap().active, n);
        assert_eq!(introspection.list().len(), n + 1);
        for i in 0..n {
            sup.terminate_child(&format!("t{i}")).await.unwrap();
        }
        assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
        timings.push(started.elapsed());
    }
    let ratio = timings[1].as_secs_f64() / timings[0].as_secs_f64();
    assert!(
        ratio < 50.0,
        "10x the children took {ratio:.1}x the time: bookkeeping is not linear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_ignores_keeps_a_permanent_spec_and_drops_a_temporary_one() {
    let (sup, _, _join) = root(Strategy::OneForOne, intensity(1, 5000), vec![]).await;
    let ignore = |id: &str| ChildSpec::new(id, |_ctx| async { Ok(None) });
    assert_eq!(sup.start_child(ignore("p")).await.unwrap(), None);
    assert_eq!(
        sup.start_child(ignore("t").restart(Restart::Temporary))
            .await
            .unwrap(),
        None
    );
    let children = sup.which_children().await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(
        (children[0].id.as_str(), children[0].status),
        ("p", Status::Stopped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dynamic_start_is_reported_and_not_kept() {
    let lab = Lab::default();
    lab.fail_starts("bad", true);
    let (sup, _, _join) = root(Strategy::OneForOne, intensity(1, 5000), vec![]).await;
    assert!(matches!(
        sup.start_child(lab.spec("bad")).await,
        Err(SupervisorError::Start(_))
    ));
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    assert!(matches!(sup.start_child(lab.spec("ok")).await, Ok(Some(_))));
    assert_eq!(
        sup.start_child(lab.spec("ok")).await,
        Err(SupervisorError::AlreadyPresent("ok".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() {
    let lab = Lab::default();
    let inner = SupervisorSpec {
        strategy: Strategy::OneForOne,
        intensity: intensity(0, 5000),
        children: vec![lab.spec("leaf")],
    };
    let (sup, introspection, _join) = root(
        Strategy::OneForOne,
        intensity(5, 5000),
        vec![ChildSpec::supervisor("inner", inner).backoff(Backoff::none())],
    )
    .await;
    let inner_ref = SupervisorRef::new(cell_of(&sup, "inner").await.unwrap().into());
    let leaf = id_of(&inner_ref, "leaf").await;
    let inner_id = cell_of(&sup, "inner").await.map(|c| c.get_id());
    inner_ref.child("leaf").await.unwrap().unwrap().kill();
    eventually("inner supervisor replaced", || async {
        cell_of(&sup, "inner").await.map(|c| c.get_id()) != inner_id
    })
    .await;
    assert!(escalated(&introspection, "root/inner"));
    let inner_ref = SupervisorRef::new(cell_of(&sup, "inner").await.unwrap().into());
    assert_ne!(id_of(&inner_ref, "leaf").await, leaf);
    assert!(introspection.get("root/inner/leaf").is_some());
}
