//! Snapshots: round trips, frozen formats, incarnation fencing, restore on restart.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, quiet_panics};
use proptest::prelude::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{
    self, MemoryStore, PersistError, Persister, Snapshot, SnapshotError, SnapshotStore, StoreError,
};
use supervisors::{Backoff, ChildSpec, Introspection, StartCtx, SupervisorRef, SupervisorSpec};

/// Version 1 of a sample state, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SampleV1 {
    name: String,
    count: u32,
}

/// Version 2: `count` widened, `tags` added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sample {
    name: String,
    count: u64,
    tags: BTreeMap<String, Vec<u8>>,
    phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Idle,
    Running { since_ms: u64 },
}

impl Snapshot for Sample {
    const VERSION: u16 = 2;
    fn upgrade(version: u16, payload: &[u8]) -> Result<Self, SnapshotError> {
        match version {
            1 => {
                let old: SampleV1 = snapshot::decode_payload(payload)?;
                Ok(Sample {
                    name: old.name,
                    count: u64::from(old.count),
                    tags: BTreeMap::new(),
                    phase: Phase::Idle,
                })
            }
            v => Err(SnapshotError::UnknownVersion(v)),
        }
    }
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        ".{0,40}",
        any::<u64>(),
        proptest::collection::btree_map(
            ".{0,8}",
            proptest::collection::vec(any::<u8>(), 0..16),
            0..6,
        ),
        prop_oneof![
            Just(Phase::Idle),
            any::<u64>().prop_map(|since_ms| Phase::Running { since_ms })
        ],
    )
        .prop_map(|(name, count, tags, phase)| Sample {
            name,
            count,
            tags,
            phase,
        })
}

proptest! {
    #[test]
    fn any_state_round_trips(state in sample()) {
        let bytes = snapshot::encode(&state);
        prop_assert_eq!(snapshot::decode::<Sample>(&bytes).unwrap(), state);
    }

    #[test]
    fn truncated_or_extended_bytes_never_decode_silently(state in sample(), cut in 1usize..8, extra in 1u8..=255) {
        let bytes = snapshot::encode(&state);
        let truncated = &bytes[..bytes.len().saturating_sub(cut)];
        if let Ok(decoded) = snapshot::decode::<Sample>(truncated) {
            prop_assert_ne!(decoded, state.clone());
        }
        let mut extended = bytes.clone();
        extended.push(extra);
        prop_assert!(snapshot::decode::<Sample>(&extended).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_rejected_or_decoded_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = snapshot::decode::<Sample>(&bytes);
    }
}

/// Golden bytes: these exact bytes were written by version 1 and by version 2 of `Sample`.
/// If either stops decoding, persisted state of real users stops loading: never edit these.
const GOLDEN_V1: &[u8] = &[b'B', b'S', b'N', b'P', 1, 0, 3, b'b', b'o', b'g', 7];
const GOLDEN_V2: &[u8] = &[
    b'B', b'S', b'N', b'P', 2, 0, 3, b'b', b'o', b'g', 0x96, 0x01, 1, 1, b'k', 2, 9, 8, 1, 0xE8,
    0x07,
];

#[test]
fn golden_bytes_of_every_version_still_decode() {
    let v1 = snapshot::decode::<Sample>(GOLDEN_V1).unwrap();
    assert_eq!(
        (v1.name.as_str(), v1.count, v1.phase),
        ("bog", 7, Phase::Idle)
    );
    let v2 = snapshot::decode::<Sample>(GOLDEN_V2).unwrap();
    let expected = Sample {
        name: "bog".into(),
        count: 150,
        tags: BTreeMap::from([("k".to_string(), vec![9, 8])]),
        phase: Phase::Running { since_ms: 1000 },
    };
    assert_eq!(v2, expected);
    assert_eq!(
        snapshot::encode(&expected),
        GOLDEN_V2,
        "version 2 encoding changed"
    );
}

#[test]
fn foreign_newer_and_unknown_versions_are_refused_by_name() {
    assert_eq!(
        snapshot::decode::<Sample>(b"hello world"),
        Err(SnapshotError::NotASnapshot)
    );
    assert_eq!(
        snapshot::decode::<Sample>(b"BSN"),
        Err(SnapshotError::NotASnapshot)
    );
    let newer = [b'B', b'S', b'N', b'P', 3, 0, 1];
    assert_eq!(
        snapshot::decode::<Sample>(&newer),
        Err(SnapshotError::NewerVersion {
            found: 3,
            supported: 2
        })
    );
    let ancient = [b'B', b'S', b'N', b'P', 0, 0, 1];
    assert_eq!(
        snapshot::decode::<Sample>(&ancient),
        Err(SnapshotError::UnknownVersion(0))
    );
    let message = SnapshotError::NewerVersion {
        found: 3,
        supported: 2,
    }
    .to_string();
    assert!(
        message.contains('3') && message.contains("upgrade borg"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stale_incarnation_cannot_overwrite_a_newer_one() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (zombie, _) = Persister::<Sample>::restore(store.clone(), "task/1", None)
        .await
        .unwrap();
    let (current, _) = Persister::<Sample>::restore(store.clone(), "task/1", None)
        .await
        .unwrap();
    assert!(current.incarnation() > zombie.incarnation());
    let state = |count| Sample {
        name: "t".into(),
        count,
        tags: BTreeMap::new(),
        phase: Phase::Idle,
    };
    current.save(&state(2)).await.unwrap();
    match zombie.save(&state(1)).await {
        Err(PersistError::Store(StoreError::Stale {
            current: c,
            attempted: a,
            ..
        })) => {
            assert_eq!((c, a), (current.incarnation(), zombie.incarnation()));
        }
        other => panic!("zombie write was not fenced: {other:?}"),
    }
    assert!(
        zombie.remove().await.is_err(),
        "zombie cannot delete either"
    );
    let stored = store.load("task/1").await.unwrap().unwrap();
    assert_eq!(snapshot::decode::<Sample>(&stored.bytes).unwrap().count, 2);
}

/// A counter that persists every increment and restores itself on (re)start.
struct Counter {
    store: Arc<dyn SnapshotStore>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CounterState {
    count: u64,
}

impl Snapshot for CounterState {
    const VERSION: u16 = 1;
}

enum CounterMsg {
    Add(u64, RpcReplyPort<u64>),
    Crash,
}

struct Running {
    persister: Persister<CounterState>,
    state: CounterState,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = Running;
    type Arguments = Arc<supervisors::ActorStats>;

    async fn pre_start(
        &self,
        _: ActorRef<CounterMsg>,
        stats: Self::Arguments,
    ) -> Result<Running, ActorProcessingErr> {
        let (persister, state) =
            Persister::restore(self.store.clone(), "counter", Some(stats)).await?;
        Ok(Running {
            persister,
            state: state.unwrap_or(CounterState { count: 0 }),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        s: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n, reply) => {
                s.state.count += n;
                s.persister.save(&s.state).await?;
                let _ = reply.send(s.state.count);
            }
            CounterMsg::Crash => panic!("crash on purpose"),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_actor_resumes_from_its_last_snapshot() {
    quiet_panics();
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let for_spec = store.clone();
    let spec = ChildSpec::new("counter", move |ctx: StartCtx| {
        let store = for_spec.clone();
        async move {
            ctx.spawn(Counter { store }, ctx.stats.clone())
                .await
                .map(Some)
        }
    })
    .backoff(Backoff::none());
    let introspection = Introspection::new();
    let root = SupervisorSpec {
        children: vec![spec],
        ..SupervisorSpec::default()
    };
    let (sup, _join) = SupervisorRef::spawn_root("root", root, introspection.clone())
        .await
        .unwrap();
    let counter = |sup: SupervisorRef| async move {
        let cell = sup
            .child("counter")
            .await
            .unwrap()
            .expect("counter running");
        ActorRef::<CounterMsg>::from(cell)
    };
    let first = counter(sup.clone()).await;
    assert_eq!(ractor::call!(first, CounterMsg::Add, 5).unwrap(), 5);
    assert_eq!(ractor::call!(first, CounterMsg::Add, 2).unwrap(), 7);
    assert!(
        introspection
            .get("root/counter")
            .unwrap()
            .snapshot_age_ms
            .is_some()
    );
    first.cast(CounterMsg::Crash).unwrap();
    eventually("counter restarted", || async {
        matches!(sup.child("counter").await, Ok(Some(c)) if c.get_id() != first.get_id())
    })
    .await;
    let second = counter(sup.clone()).await;
    assert_eq!(
        ractor::call!(second, CounterMsg::Add, 1).unwrap(),
        8,
        "resumed from 7"
    );
    let info = introspection.get("root/counter").unwrap();
    assert_eq!(info.restarts, 1);
    assert!(info.last_failure.unwrap().contains("crash on purpose"));
    tokio::time::sleep(Duration::from_millis(1)).await;
}
