//! The registry and event stream, as a dashboard would read them.

mod common;

use std::time::Duration;

use common::*;
use supervisors::{
    Backoff, ChildSpec, Event, Handle, Introspection, Status, SupervisorRef, SupervisorSpec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_shows_tree_paths_mailbox_depth_and_handled_counts() {
    let lab = Lab::default();
    let group = SupervisorSpec {
        children: vec![lab.spec("leaf")],
        ..SupervisorSpec::default()
    };
    let introspection = Introspection::new();
    let spec = SupervisorSpec {
        children: vec![lab.spec("worker"), ChildSpec::supervisor("group", group)],
        ..SupervisorSpec::default()
    };
    let (sup, _join) = SupervisorRef::spawn_root("root", spec, introspection.clone())
        .await
        .unwrap();
    let paths: Vec<(String, String)> = introspection
        .list()
        .into_iter()
        .map(|i| (i.path, i.kind))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("root".into(), "supervisor".into()),
            ("root/group".into(), "supervisor".into()),
            ("root/group/leaf".into(), "worker".into()),
            ("root/worker".into(), "worker".into()),
        ]
    );

    let cell = cell_of(&sup, "worker").await.unwrap();
    let handle: Handle<WorkerMsg> =
        Handle::from_cell(cell, introspection.stats("root/worker").unwrap());
    handle
        .cast(WorkerMsg::Busy(Duration::from_millis(300)))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..10 {
        handle.cast(WorkerMsg::Busy(Duration::ZERO)).unwrap();
    }
    let busy = introspection.get("root/worker").unwrap();
    assert_eq!((busy.mailbox_depth, busy.handled), (10, 1));
    eventually("mailbox drained", || async {
        let info = introspection.get("root/worker").unwrap();
        info.mailbox_depth == 0 && info.handled == 11
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_starts_failures_restarts_and_stops_in_order() {
    quiet_panics();
    let lab = Lab::default();
    let introspection = Introspection::new();
    let mut events = introspection.subscribe();
    let spec = SupervisorSpec {
        children: vec![lab.spec("w").backoff(Backoff::none())],
        ..SupervisorSpec::default()
    };
    let (sup, join) = SupervisorRef::spawn_root("root", spec, introspection.clone())
        .await
        .unwrap();
    let first = id_of(&sup, "w").await;
    tell(&sup, "w", WorkerMsg::Panic).await;
    replaced(&sup, "w", first).await;
    sup.shutdown().await;
    join.await.unwrap();

    let mut seen = Vec::new();
    while let Ok(record) = events.try_recv() {
        seen.push(match record.event {
            Event::Started { path, .. } => format!("started {path}"),
            Event::Failed { path, error } => {
                assert!(error.contains("worker told to panic"), "{error}");
                format!("failed {path}")
            }
            Event::Restarted { path, restarts } => format!("restarted {path} #{restarts}"),
            Event::Stopped { path, .. } => format!("stopped {path}"),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        vec![
            "started root/w",
            "started root",
            "failed root/w",
            "started root/w",
            "restarted root/w #1",
            "stopped root/w",
        ]
    );
    let info = introspection.get("root").unwrap();
    assert_eq!(
        info.status,
        Status::Running,
        "the root entry is the caller's to remove"
    );
}
