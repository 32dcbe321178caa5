//! Many writers at once, atomicity under faults, and the signal that wakes followers.

use super::*;

// ---- concurrency -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_many_writers_on_one_stream() {
    let dir = TempDir::new("stress-one");
    let store = Arc::new(open(&dir.file("events.db")).await);
    conformance::events::concurrent_writers_on_one_stream(store.clone(), 32, 40).await;
    assert!(assert_consistent(&*store).await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_many_writers_on_many_streams() {
    let dir = TempDir::new("stress-many");
    let store = Arc::new(open(&dir.file("events.db")).await);
    conformance::events::concurrent_writers_on_many_streams(store.clone(), 64, 40).await;
    assert_eq!(assert_consistent(&*store).await, 64 * 40);
}

/// Writers on streams of their own (`{prefix}-{n}`), each appending one event at a time
/// with the exact expected version, next to whatever else runs on the store.
async fn writers_on_own_streams(
    store: Arc<dyn EventStore>,
    prefix: &'static str,
    streams: u64,
    per_stream: u64,
) {
    let mut tasks = Vec::new();
    for n in 0..streams {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new("Counter", format!("{prefix}-{n}"));
            for v in 0..per_stream {
                store
                    .append(&s, ExpectedVersion::Exact(v), batch(v..v + 1))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_both_at_once_through_two_pools_on_one_file() {
    // Two stores on the same file do not share the in-process write queue: they meet at
    // SQLite's write lock (BEGIN IMMEDIATE and the busy timeout), as two processes would.
    let dir = TempDir::new("stress-two-pools");
    let path = dir.file("events.db");
    let first: Arc<dyn EventStore> = Arc::new(open(&path).await);
    let second: Arc<dyn EventStore> = Arc::new(open(&path).await);
    let contended_first = tokio::spawn(conformance::events::concurrent_writers_on_one_stream(
        first.clone(),
        16,
        30,
    ));
    let own_first = tokio::spawn(writers_on_own_streams(first.clone(), "first", 16, 30));
    let own_second = tokio::spawn(writers_on_own_streams(second.clone(), "second", 16, 30));
    contended_first.await.unwrap();
    own_first.await.unwrap();
    own_second.await.unwrap();

    // One stream, writers alternating between the two pools: every version won once.
    let s = StreamId::new("Counter", "across-pools");
    let mut tasks = Vec::new();
    for writer in 0..16u64 {
        let store = if writer % 2 == 0 { &first } else { &second }.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0u64;
            for _ in 0..20 {
                let version = store.stream_version(&s).await.unwrap();
                match store
                    .append(&s, ExpectedVersion::from_version(version), batch(0..2))
                    .await
                {
                    Ok(_) => wins += 1,
                    Err(StoreError::Conflict(c)) => assert!(c.actual > version),
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap();
    }
    assert_eq!(first.stream_version(&s).await.unwrap(), 2 * wins);

    let total = assert_consistent(&*first).await;
    assert_eq!(assert_consistent(&*second).await, total);
    assert!(total > 2 * 16 * 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_memory_database() {
    let store: Arc<dyn EventStore> = Arc::new(open(":memory:").await);
    let contended = tokio::spawn(conformance::events::concurrent_writers_on_one_stream(
        store.clone(),
        16,
        30,
    ));
    let own = tokio::spawn(writers_on_own_streams(store.clone(), "mem", 32, 30));
    contended.await.unwrap();
    own.await.unwrap();
    assert!(assert_consistent(&*store).await > 32 * 30);
}

// ---- atomicity and faults --------------------------------------------------------------------

#[tokio::test]
async fn a_batch_failing_halfway_appends_nothing() {
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "half");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..2))
        .await
        .unwrap();
    // The database refuses the third event of the next batch.
    execute(
        &store,
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN json_extract(NEW.payload, '$.n') = 4 \
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
    )
    .await;
    let result = store
        .append(&s, ExpectedVersion::Exact(2), batch(2..6))
        .await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(e)) if e.to_string().contains("disk on fire")),
        "{result:?}"
    );
    assert_eq!(
        store.stream_version(&s).await.unwrap(),
        2,
        "no partial batch"
    );
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
    // The store keeps working.
    execute(&store, "DROP TRIGGER refuse").await;
    assert_eq!(
        store
            .append(&s, ExpectedVersion::Exact(2), batch(2..6))
            .await
            .unwrap()
            .version,
        6
    );
}

#[tokio::test]
async fn a_unique_violation_is_the_typed_conflict() {
    // Simulates a writer that slipped in between the version check and the insert (which
    // BEGIN IMMEDIATE prevents for well-behaved writers): a trigger takes the version first.
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "race");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..1))
        .await
        .unwrap();
    execute(
        &store,
        "CREATE TRIGGER sneak BEFORE INSERT ON events WHEN NEW.event_type = 'Sneaky' BEGIN \
         INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata) \
         VALUES (NEW.stream_type, NEW.stream_id, NEW.version, NEW.event_id, 'Other', 1, NEW.timestamp, '{}', '{}'); END",
    )
    .await;
    let result = store
        .append(
            &s,
            ExpectedVersion::Exact(1),
            vec![NewEvent::new("Sneaky", 1, json!({}))],
        )
        .await;
    match result {
        Err(StoreError::Conflict(c)) => {
            assert_eq!(c.stream, s);
            assert_eq!(c.expected, ExpectedVersion::Exact(1));
            assert_eq!(c.actual, 1, "the version left after the rollback");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_append_is_never_partial() {
    // The caller stops waiting at various points of a 500-event append: the batch is never
    // visible in part, and (it runs in a task of its own) it is not cut short either.
    let dir = TempDir::new("abandoned");
    for target in [":memory:".to_owned(), dir.file("events.db")] {
        let store = open(&target).await;
        let streams: Vec<StreamId> = (0..20)
            .map(|n| StreamId::new("Counter", format!("abandoned-{n}")))
            .collect();
        for (n, s) in (0u64..).zip(&streams) {
            let append = store.append(s, ExpectedVersion::NoStream, batch(0..500));
            let _ = tokio::time::timeout(Duration::from_micros(200 * n), append).await;
            let version = store.stream_version(s).await.unwrap();
            assert!(version == 0 || version == 500, "partial batch: {version}");
        }
        for s in &streams {
            let mut version = 0;
            for _ in 0..500 {
                version = store.stream_version(s).await.unwrap();
                assert!(version == 0 || version == 500, "partial batch: {version}");
                if version == 500 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(version, 500, "{s}: the abandoned append completed");
        }
        // The connections are fine: nothing was left inside a transaction.
        let s = StreamId::new("Counter", "after");
        store
            .append(&s, ExpectedVersion::NoStream, batch(0..3))
            .await
            .unwrap();
        assert_eq!(assert_consistent(&store).await, 20 * 500 + 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_the_pool_mid_run_fails_typed_and_leaves_no_partial_batch() {
    const BATCH: u64 = 10;
    let dir = TempDir::new("fault");
    let path = dir.file("events.db");
    let store = open(&path).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let s = StreamId::new("Counter", format!("fault-{w}"));
            let mut acknowledged = 0;
            loop {
                let events = batch(acknowledged..acknowledged + BATCH);
                match store
                    .append(&s, ExpectedVersion::Exact(acknowledged), events)
                    .await
                {
                    Ok(appended) => acknowledged = appended.version,
                    Err(StoreError::Unavailable(_)) => return (s, acknowledged),
                    Err(other) => panic!("expected Unavailable, got {other:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.close().await;

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }
    let s = &acknowledged[0].0;
    assert!(matches!(
        store.load(s, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read_all(0, 10).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.stream_version(s).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.migrate().await,
        Err(StoreError::Unavailable(_))
    ));

    // The database is back: exactly the acknowledged batches are there.
    let reopened = open(&path).await;
    let mut total = 0;
    for (s, acknowledged) in &acknowledged {
        let version = reopened.stream_version(s).await.unwrap();
        assert_eq!(version, *acknowledged, "{s}: acknowledged vs stored");
        assert_eq!(version % BATCH, 0, "{s}: partial batch");
        total += version;
    }
    assert!(
        total > 0,
        "the writers made progress before the pool closed"
    );
    assert_eq!(assert_consistent(&reopened).await as u64, total);
}

// ---- signal ----------------------------------------------------------------------------------

#[tokio::test]
async fn appends_wake_followers() {
    let store = open(":memory:").await;
    let mut signal = store.appended_signal().expect("a signal");
    assert_eq!(*signal.borrow_and_update(), 0);
    let follower = tokio::spawn(async move {
        signal.changed().await.unwrap();
        *signal.borrow_and_update()
    });
    let appended = store
        .clone()
        .append(
            &StreamId::new("Counter", "sig"),
            ExpectedVersion::Any,
            batch(0..3),
        )
        .await
        .unwrap();
    let woke_at = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(woke_at, appended.events[2].position);

    // A failed append does not signal.
    let mut signal = store.appended_signal().unwrap();
    signal.borrow_and_update();
    let _ = store
        .append(
            &StreamId::new("Counter", "sig"),
            ExpectedVersion::NoStream,
            batch(0..1),
        )
        .await
        .unwrap_err();
    assert!(!signal.has_changed().unwrap());
}
