//! The redb snapshot store against its contract: durable acks, incarnation fencing, group
//! commit, orderly close, and refusal (without a byte changed) of files that are not ours.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use borg::store::format::{
    META_TABLE, SNAPSHOTS_TABLE, STORE_FORMAT_VERSION, STORE_META_KEY, encode_store_meta,
};
use borg::store::{FILE_NAME, KeyInfo, OpenError, OpenErrorKind, Store};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use supervisors::snapshot::{Persister, Snapshot, SnapshotStore, StoreError, now_ms};

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    // A folder that does not exist yet: open must create it.
    let dir = tmp.path().join("data");
    (tmp, dir)
}

/// Reopens until the previous owner (a writer thread finishing after its last handle was
/// dropped) has released the file.
fn reopen(dir: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(OpenError {
                kind: OpenErrorKind::Locked,
                ..
            }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("reopen failed: {e}"),
        }
    }
}

#[tokio::test]
async fn save_then_load_round_trips() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    assert!(dir.join(FILE_NAME).is_file());
    assert_eq!(store.load("nothing/here").await.unwrap(), None);

    let before = now_ms();
    for (i, size) in [0usize, 1, 100, 5_000, 300_000].into_iter().enumerate() {
        let key = format!("actor/{i}");
        let claim = store.claim(&key).await.unwrap();
        let bytes: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        store
            .save(&key, claim.incarnation, bytes.clone())
            .await
            .unwrap();
        let loaded = store.load(&key).await.unwrap().expect("saved snapshot");
        assert_eq!(loaded.bytes, bytes);
        assert_eq!(loaded.incarnation, claim.incarnation);
        assert!(loaded.saved_at_ms >= before && loaded.saved_at_ms <= now_ms());
    }
    // A second save replaces the first.
    store.save("actor/1", 1, b"second".to_vec()).await.unwrap();
    assert_eq!(
        store.load("actor/1").await.unwrap().unwrap().bytes,
        b"second"
    );
    store.close().await;
}

#[tokio::test]
async fn claim_bumps_the_incarnation_and_returns_the_last_snapshot() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    let first = store.claim("repo/borg").await.unwrap();
    assert_eq!((first.incarnation, first.last), (1, None));
    store
        .save("repo/borg", 1, b"state one".to_vec())
        .await
        .unwrap();

    let second = store.claim("repo/borg").await.unwrap();
    assert_eq!(second.incarnation, 2);
    let last = second.last.expect("the snapshot saved by incarnation 1");
    assert_eq!((last.incarnation, last.bytes), (1, b"state one".to_vec()));

    // Claims are durable writes: the load sees no new snapshot, and a third claim counts on.
    assert_eq!(
        store.load("repo/borg").await.unwrap().unwrap().incarnation,
        1
    );
    assert_eq!(store.claim("repo/borg").await.unwrap().incarnation, 3);
    assert_eq!(store.claim("other").await.unwrap().incarnation, 1);
    let stats = store.stats();
    assert_eq!((stats.claims, stats.snapshots_written), (4, 1));
    store.close().await;
}

#[tokio::test]
async fn stale_incarnation_is_rejected_and_the_stored_value_unchanged() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    let zombie = store.claim("task/7").await.unwrap().incarnation;
    store.save("task/7", zombie, b"old".to_vec()).await.unwrap();
    let current = store.claim("task/7").await.unwrap().incarnation;
    store
        .save("task/7", current, b"new".to_vec())
        .await
        .unwrap();

    let stale = store.save("task/7", zombie, b"zombie".to_vec()).await;
    assert_eq!(
        stale,
        Err(StoreError::Stale {
            key: "task/7".into(),
            current,
            attempted: zombie
        })
    );
    assert!(matches!(
        store.remove("task/7", zombie).await,
        Err(StoreError::Stale { .. })
    ));
    let stored = store.load("task/7").await.unwrap().unwrap();
    assert_eq!(
        (stored.incarnation, stored.bytes),
        (current, b"new".to_vec())
    );
    assert_eq!(store.stats().stale_rejections, 2);
    store.close().await;
}

#[tokio::test]
async fn a_stale_write_does_not_fail_the_rest_of_its_batch() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    store.claim("fenced").await.unwrap();
    store.claim("fenced").await.unwrap(); // incarnation 2 now owns it
    for i in 0..20 {
        store.claim(&format!("k{i}")).await.unwrap();
    }
    // Submitted together, so they share batches with the stale write.
    let stale = store.save("fenced", 1, b"zombie".to_vec());
    let good = futures_join(
        (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    store.save(&key, 1, key.as_bytes().to_vec()).await
                })
            })
            .collect(),
    );
    let (stale, good) = tokio::join!(stale, good);
    assert!(matches!(stale, Err(StoreError::Stale { .. })));
    for result in good {
        result.unwrap().unwrap();
    }
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(
            store.load(&key).await.unwrap().unwrap().bytes,
            key.as_bytes()
        );
    }
    assert_eq!(store.load("fenced").await.unwrap(), None);
    store.close().await;
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<Result<T, String>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string()));
    }
    out
}

#[tokio::test]
async fn remove_forgets_the_state_but_keeps_the_fence() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    store.claim("chat/1").await.unwrap();
    let owner = store.claim("chat/1").await.unwrap().incarnation;
    store.save("chat/1", owner, b"x".to_vec()).await.unwrap();
    store.remove("chat/1", owner).await.unwrap();
    assert_eq!(store.load("chat/1").await.unwrap(), None);
    // The zombie of incarnation 1 cannot bring it back.
    assert!(matches!(
        store.save("chat/1", 1, b"resurrected".to_vec()).await,
        Err(StoreError::Stale { .. })
    ));
    assert_eq!(store.load("chat/1").await.unwrap(), None);
    // Removing what was never stored is fine.
    store.remove("never/stored", 1).await.unwrap();
    // A new start claims past the removed incarnation and finds nothing to resume.
    let next = store.claim("chat/1").await.unwrap();
    assert_eq!((next.incarnation, next.last), (owner + 1, None));
    assert_eq!(store.stats().removes, 2);
    store.close().await;
}

#[tokio::test]
async fn list_reports_every_key_with_incarnation_age_and_size() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.list().await.unwrap(), vec![]);
    let before = now_ms();
    store.claim("b/claimed-only").await.unwrap();
    store.claim("a/saved").await.unwrap();
    store.claim("a/saved").await.unwrap();
    store.save("a/saved", 2, vec![9; 1234]).await.unwrap();
    store.claim("c/removed").await.unwrap();
    store.save("c/removed", 1, vec![1; 10]).await.unwrap();
    store.remove("c/removed", 1).await.unwrap();

    let list = store.list().await.unwrap();
    let keys: Vec<&str> = list.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["a/saved", "b/claimed-only", "c/removed"]);
    let saved = &list[0];
    assert_eq!((saved.incarnation, saved.size), (2, 1234));
    let at = saved.saved_at_ms.expect("a/saved holds a snapshot");
    assert!(at >= before && at <= now_ms());
    let no_snapshot = |k: &KeyInfo, inc| {
        assert_eq!(
            (k.incarnation, k.saved_at_ms, k.size),
            (inc, None, 0),
            "{k:?}"
        )
    };
    no_snapshot(&list[1], 1);
    no_snapshot(&list[2], 1);
    store.close().await;
}

#[tokio::test]
async fn reopen_after_close_keeps_everything() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    for i in 0..50u32 {
        let key = format!("k/{i}");
        let inc = store.claim(&key).await.unwrap().incarnation;
        store
            .save(&key, inc, i.to_le_bytes().repeat(i as usize))
            .await
            .unwrap();
    }
    store.claim("k/7").await.unwrap(); // k/7 at incarnation 2, snapshot from 1
    store.remove("k/9", 1).await.unwrap();
    let listed = store.list().await.unwrap();
    let clone = store.clone();
    store.close().await;
    store.close().await; // idempotent

    // Every handle sees the store closed.
    assert_eq!(clone.save("k/1", 1, vec![]).await, Err(StoreError::Closed));
    assert_eq!(clone.claim("k/1").await, Err(StoreError::Closed));
    assert_eq!(clone.load("k/1").await, Err(StoreError::Closed));
    assert_eq!(clone.remove("k/1", 1).await, Err(StoreError::Closed));
    assert_eq!(clone.list().await, Err(StoreError::Closed));
    drop(clone);

    // close() released the file: the reopen must not find it locked.
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.list().await.unwrap(), listed);
    for i in (0..50u32).filter(|&i| i != 9) {
        let loaded = store.load(&format!("k/{i}")).await.unwrap().unwrap();
        assert_eq!(loaded.bytes, i.to_le_bytes().repeat(i as usize));
    }
    assert_eq!(store.load("k/9").await.unwrap(), None);
    assert_eq!(store.claim("k/7").await.unwrap().incarnation, 3);
    assert!(matches!(
        store.save("k/7", 2, vec![]).await,
        Err(StoreError::Stale { .. })
    ));
    store.close().await;
}

#[tokio::test]
async fn dropping_the_last_handle_lets_the_writer_finish_and_release_the_file() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    store.claim("k").await.unwrap();
    store.save("k", 1, b"kept".to_vec()).await.unwrap();
    drop(store);
    let store = reopen(&dir);
    assert_eq!(store.load("k").await.unwrap().unwrap().bytes, b"kept");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_saves_are_acked_durable_and_group_committed() {
    const TASKS: usize = 50;
    const SAVES: u64 = 20;
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    for t in 0..TASKS {
        store.claim(&format!("task/{t}")).await.unwrap();
    }
    let before = store.stats();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("task/{t}");
                for n in 1..=SAVES {
                    let value = format!("{key}#{n}").into_bytes();
                    store.save(&key, 1, value).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.stats();
    let writes = TASKS as u64 * SAVES;
    assert_eq!(after.snapshots_written - before.snapshots_written, writes);
    let commits = after.commits - before.commits;
    assert!(
        commits < writes,
        "{writes} saves took {commits} commits: no group commit"
    );
    assert!(after.max_batch_size > 1, "{after:?}");
    assert!(after.commit_p99_micros >= after.commit_p50_micros);
    assert!(after.commit_p50_micros > 0, "{after:?}");

    store.close().await;
    let store = Store::open(&dir).unwrap();
    for t in 0..TASKS {
        let key = format!("task/{t}");
        let stored = store.load(&key).await.unwrap().unwrap();
        assert_eq!(stored.bytes, format!("{key}#{SAVES}").into_bytes());
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_commits_the_queue_and_every_ack_is_durable() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    for i in 0..200 {
        store.claim(&format!("k{i}")).await.unwrap();
    }
    let saves: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.save(&format!("k{i}"), 1, vec![i as u8; 100]).await })
        })
        .collect();
    // Close in the middle of the stream: once some saves are durable, while others are queued.
    while store.stats().snapshots_written == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    store.close().await;
    let mut acked = Vec::new();
    for (i, save) in saves.into_iter().enumerate() {
        match save.await.unwrap() {
            Ok(()) => acked.push(i),
            Err(StoreError::Closed) => {}
            Err(e) => panic!("save {i}: {e}"),
        }
    }
    assert!(!acked.is_empty());
    let store = Store::open(&dir).unwrap();
    for i in acked {
        let stored = store.load(&format!("k{i}")).await.unwrap();
        assert_eq!(
            stored.unwrap().bytes,
            vec![i as u8; 100],
            "acked save k{i} lost"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn a_persisted_actor_restores_through_the_store() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Counter {
        n: u64,
    }
    impl Snapshot for Counter {
        const VERSION: u16 = 1;
    }
    let (_tmp, dir) = data_dir();
    let store: Arc<dyn SnapshotStore> = Arc::new(Store::open(&dir).unwrap());
    let (first, state) = Persister::<Counter>::restore(store.clone(), "counter", None)
        .await
        .unwrap();
    assert_eq!(state, None);
    first.save(&Counter { n: 5 }).await.unwrap();
    let (second, state) = Persister::<Counter>::restore(store.clone(), "counter", None)
        .await
        .unwrap();
    assert_eq!(state, Some(Counter { n: 5 }));
    assert!(
        first.save(&Counter { n: 99 }).await.is_err(),
        "zombie wrote"
    );
    second.save(&Counter { n: 6 }).await.unwrap();
}

#[tokio::test]
async fn a_store_left_by_a_crash_is_recovered() {
    // Copying the file while a store has it open yields what a kill -9 leaves: redb's
    // recovery flag set, no clean shutdown. Opening the copy exercises verification of a file
    // that needs repair.
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    store.claim("k").await.unwrap();
    store.save("k", 1, b"durable".to_vec()).await.unwrap();
    let crashed = dir.with_file_name("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::copy(dir.join(FILE_NAME), crashed.join(FILE_NAME)).unwrap();
    store.close().await;

    let recovered = Store::open(&crashed).unwrap();
    assert_eq!(
        recovered.load("k").await.unwrap().unwrap().bytes,
        b"durable"
    );
    assert_eq!(recovered.claim("k").await.unwrap().incarnation, 2);
    recovered.close().await;
    assert_eq!(files_in(&crashed), [FILE_NAME], "scratch files left behind");
}

#[tokio::test]
async fn a_second_open_is_refused_while_the_store_is_in_use() {
    let (_tmp, dir) = data_dir();
    let store = Store::open(&dir).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(matches!(err.kind, OpenErrorKind::Locked), "{err:?}");
    let message = err.to_string();
    let path = dir.join(FILE_NAME).display().to_string();
    assert!(
        message.contains(&format!("another borg daemon is using {path}")),
        "{message}"
    );
    store.close().await;
}

// ---- files that are not ours: refused, named, and left byte-for-byte untouched ----

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Places `bytes` as the store file, opens, and checks the refusal: the right kind, a message
/// naming the file and `hints`, the exact bytes unchanged and no other file created.
fn assert_refused(bytes: &[u8], kind: fn(&OpenErrorKind) -> bool, hints: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(FILE_NAME);
    std::fs::write(&path, bytes).unwrap();
    let err = Store::open(tmp.path()).expect_err("a foreign file was accepted");
    assert!(kind(&err.kind), "unexpected refusal: {err:?}");
    let message = err.to_string();
    eprintln!("refused as expected: {message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    for hint in hints {
        assert!(message.contains(hint), "{message:?} lacks {hint:?}");
    }
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "a refused file was modified"
    );
    assert_eq!(
        files_in(tmp.path()),
        [FILE_NAME],
        "scratch files left behind"
    );
    message
}

/// Bytes of a redb file built by `fill`, closed cleanly.
fn redb_bytes(fill: impl FnOnce(&Database)) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.redb");
    let db = Database::create(&path).unwrap();
    fill(&db);
    db.close().unwrap();
    std::fs::read(&path).unwrap()
}

fn write_table(db: &Database, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
    let tx = db.begin_write().unwrap();
    tx.open_table(table).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}

const MOVE_IT: &str = "move it away or set DATA_DIR to another folder";

#[test]
fn a_garbage_file_is_refused_untouched() {
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
    assert_refused(
        &garbage,
        |k| matches!(k, OpenErrorKind::NotRedb),
        &["not a borg snapshot store", MOVE_IT],
    );
    assert_refused(
        b"SQLite format 3\0 and then some",
        |k| matches!(k, OpenErrorKind::NotRedb),
        &[MOVE_IT],
    );
}

#[test]
fn an_empty_file_is_refused_untouched() {
    assert_refused(
        b"",
        |k| matches!(k, OpenErrorKind::Empty),
        &["empty file", MOVE_IT],
    );
}

#[test]
fn a_redb_database_of_another_program_is_refused_untouched() {
    let users: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
    let no_meta = redb_bytes(|db| write_table(db, users, "alice", b"admin"));
    assert_refused(
        &no_meta,
        |k| matches!(k, OpenErrorKind::NotABorgStore(_)),
        &["not a borg store", MOVE_IT],
    );

    // A `meta` table of the same shape, without our magic.
    let other_meta =
        redb_bytes(|db| write_table(db, META_TABLE, STORE_META_KEY, b"OTHERAPP\x01\x00"));
    assert_refused(
        &other_meta,
        |k| matches!(k, OpenErrorKind::NotABorgStore(_)),
        &["not a borg store"],
    );

    // A `meta` table of another type.
    let typed: TableDefinition<u64, u64> = TableDefinition::new("meta");
    let typed_meta = redb_bytes(|db| {
        let tx = db.begin_write().unwrap();
        tx.open_table(typed).unwrap().insert(1, 2).unwrap();
        tx.commit().unwrap();
    });
    assert_refused(
        &typed_meta,
        |k| matches!(k, OpenErrorKind::NotABorgStore(_)),
        &["not a borg store"],
    );
}

#[test]
fn a_foreign_redb_left_by_a_crash_is_refused_untouched() {
    // A copy taken while the database is open needs crash recovery, which writes; the store
    // must do that on a scratch copy only.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.redb");
    let db = Database::create(&path).unwrap();
    let users: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
    write_table(&db, users, "alice", b"admin");
    let crashed = std::fs::read(&path).unwrap();
    drop(db);
    assert_refused(
        &crashed,
        |k| matches!(k, OpenErrorKind::NotABorgStore(_)),
        &["not a borg store", MOVE_IT],
    );
}

#[test]
fn a_store_of_a_newer_borg_is_refused_untouched() {
    let newer = STORE_FORMAT_VERSION + 1;
    let bytes = redb_bytes(|db| {
        write_table(db, META_TABLE, STORE_META_KEY, &encode_store_meta(newer));
        write_table(db, SNAPSHOTS_TABLE, "k", b"a record from the future");
    });
    let message = assert_refused(
        &bytes,
        |k| {
            matches!(
                k,
                OpenErrorKind::NewerFormat {
                    found: 2,
                    supported: 1
                }
            )
        },
        &["written by a newer borg", "upgrade borg"],
    );
    assert!(
        message.contains(&format!("version {newer}"))
            && message.contains(&format!("up to {STORE_FORMAT_VERSION}")),
        "{message}"
    );
}

#[test]
fn a_corrupt_redb_file_is_refused_untouched() {
    let valid = redb_bytes(|db| {
        write_table(db, META_TABLE, STORE_META_KEY, &encode_store_meta(1));
        write_table(db, SNAPSHOTS_TABLE, "k", b"v");
    });
    // redb's magic, then its header overwritten with noise.
    let mut scrambled = valid.clone();
    for (i, b) in scrambled[9..4096].iter_mut().enumerate() {
        *b = (i * 131 + 17) as u8;
    }
    assert_refused(
        &scrambled,
        |k| matches!(k, OpenErrorKind::Corrupt(_)),
        &["is corrupt", "backup"],
    );
    // Cut short.
    assert_refused(
        &valid[..valid.len().min(1024)],
        |k| matches!(k, OpenErrorKind::Corrupt(_)),
        &["is corrupt"],
    );
}

#[test]
fn a_folder_at_the_store_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join(FILE_NAME)).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err.kind, OpenErrorKind::NotAFile), "{err:?}");
    assert!(err.to_string().contains("DATA_DIR"));
}
