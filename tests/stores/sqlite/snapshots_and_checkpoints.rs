//! Snapshots, checkpoints with their leases, processed messages.

use super::*;

// ---- snapshots -------------------------------------------------------------------------------

#[tokio::test]
async fn snapshots_keep_the_newest_per_stream() {
    use conformance::snapshots as suite;
    let dir = TempDir::new("snapshots");
    let path = dir.file("events.db");
    let snapshots = SqliteSnapshotStore::connect(&path).await.unwrap();
    snapshots.migrate().await.unwrap();
    snapshots.migrate().await.unwrap();
    suite::keeps_the_newest_per_stream(Arc::new(snapshots.clone())).await;
    // Another pool on the same file.
    let second = SqliteSnapshotStore::connect(&path).await.unwrap();
    suite::shared_by_every_handle(Arc::new(snapshots.clone()), Arc::new(second.clone())).await;
    suite::the_newest_wins_among_concurrent_savers(Arc::new(snapshots.clone())).await;
    second.pool().close().await;

    // Durable, and shared with an event store on the same file.
    snapshots.pool().close().await;
    let store = open(&path).await;
    assert_eq!(
        store
            .snapshot_store()
            .get(&StreamId::new("Invoice", "snap-1"))
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn an_unreadable_snapshot_is_no_snapshot() {
    let store = open(":memory:").await;
    let snapshots = store.snapshot_store();
    conformance::snapshots::an_unreadable_snapshot_is_no_snapshot(
        Arc::new(snapshots.clone()),
        async |_| execute(&store, "UPDATE snapshots SET state = '{oops'").await,
    )
    .await;

    store.close().await;
    assert!(matches!(
        snapshots.get(&StreamId::new("Order", "bad")).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn snapshot_spans() {
    let store = open(":memory:").await;
    let snapshots = store.snapshot_store();
    let s = StreamId::new("Order", "o-9");
    let capture = eventsource_runtime::testing::capture();
    snapshots
        .save(conformance::snapshots::snapshot(&s, 7))
        .await
        .unwrap();
    snapshots.get(&s).await.unwrap();
    snapshots.exists(&s).await.unwrap();
    snapshots.delete(&s).await.unwrap();
    let spans = capture.spans();
    assert_eq!(
        spans.names(),
        [
            SPAN_SNAPSHOT_STORE_SAVE,
            SPAN_SNAPSHOT_STORE_GET,
            SPAN_SNAPSHOT_STORE_EXISTS,
            SPAN_SNAPSHOT_STORE_DELETE
        ]
    );
    for (name, operation) in [
        (SPAN_SNAPSHOT_STORE_SAVE, "save"),
        (SPAN_SNAPSHOT_STORE_GET, "get"),
        (SPAN_SNAPSHOT_STORE_EXISTS, "exists"),
        (SPAN_SNAPSHOT_STORE_DELETE, "delete"),
    ] {
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client);
        assert_eq!(attribute(span, attr::AGGREGATE_ID), Some(&string("o-9")));
        assert_eq!(
            attribute(span, attr::AGGREGATE_TYPE),
            Some(&string("Order"))
        );
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("sqlite"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("snapshots"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
    }
    for name in [SPAN_SNAPSHOT_STORE_SAVE, SPAN_SNAPSHOT_STORE_GET] {
        assert_eq!(
            attribute(spans.get(name), attr::VERSION),
            Some(&Value::I64(7))
        );
    }
    capture.clear();
    let silent = snapshots.clone().enable_tracing(false);
    silent.get(&s).await.unwrap();
    assert!(capture.spans().is_empty());
}

// ---- checkpoints -----------------------------------------------------------------------------

#[tokio::test]
async fn a_save_never_moves_a_checkpoint_back() {
    let dir = TempDir::new("monotonic_checkpoints");
    let path = dir.file("events.db");
    let checkpoints = SqliteCheckpointStore::connect(&path).await.unwrap();
    checkpoints.migrate().await.unwrap();
    let second = SqliteCheckpointStore::connect(&path).await.unwrap();
    conformance::checkpoints::a_save_never_moves_a_checkpoint_back(
        Arc::new(checkpoints.clone()),
        Arc::new(second.clone()),
    )
    .await;
    second.pool().close().await;
    checkpoints.pool().close().await;
}

#[tokio::test]
async fn checkpoints_load_and_save() {
    let dir = TempDir::new("checkpoints");
    let path = dir.file("events.db");
    let checkpoints = SqliteCheckpointStore::connect(&path).await.unwrap();
    checkpoints.migrate().await.unwrap();
    // Another pool on the same file.
    let second = SqliteCheckpointStore::connect(&path).await.unwrap();
    conformance::checkpoints::saves_and_loads_positions(
        Arc::new(checkpoints.clone()),
        Arc::new(second.clone()),
    )
    .await;
    second.pool().close().await;
    checkpoints.save("orders", 42).await.unwrap();

    checkpoints.pool().close().await;
    assert!(matches!(
        checkpoints.load("orders").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        checkpoints.save("orders", 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(checkpoints.try_acquire("orders").await.is_err());

    let reopened = open(&path).await.checkpoint_store();
    assert_eq!(reopened.load("orders").await.unwrap(), 42, "durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_exclude_runners_of_this_process() {
    use conformance::checkpoints as suite;
    let dir = TempDir::new("leases");
    let path = dir.file("events.db");
    let checkpoints = open(&path).await.checkpoint_store();
    // Another store (and pool) on the same file, opened by a relative-looking alias.
    let other = SqliteCheckpointStore::connect(&format!("sqlite:{path}"))
        .await
        .unwrap();
    let elsewhere = open(":memory:").await.checkpoint_store();
    suite::leases_exclude_other_runners(
        Arc::new(checkpoints.clone()),
        Arc::new(other),
        Arc::new(elsewhere),
        DroppedLease::FreeAtOnce,
    )
    .await;
    suite::one_winner_among_concurrent_takers(Arc::new(checkpoints.clone())).await;

    // Racing runners, each on a pool of its own.
    let mut racers: Vec<Arc<dyn CheckpointStore>> = Vec::new();
    for _ in 0..6 {
        racers.push(Arc::new(
            SqliteCheckpointStore::connect(&path).await.unwrap(),
        ));
    }
    suite::one_lease_at_a_time_among_racing_runners(racers).await;
}

// ---- processed messages ----------------------------------------------------------------------

/// Two stores (two pools) on one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processed_messages_conform() {
    let dir = TempDir::new("processed");
    let path = dir.file("handled.db");
    let first = SqliteProcessedMessages::connect(&path).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteProcessedMessages::connect(&path).await.unwrap();
    conformance::processed::run_all(
        Arc::new(first.clone()) as Arc<dyn ProcessedMessages>,
        Arc::new(second.clone()),
    )
    .await;
    first.pool().close().await;
    second.pool().close().await;
}

/// Why a runner stopped (the suite's), in the migrated file.
#[tokio::test]
async fn a_runner_stop_is_listed_until_cleared() {
    let dir = TempDir::new("runner-stop");
    let checkpoints = open(&dir.file("events.db")).await.checkpoint_store();
    conformance::checkpoints::a_runner_stop_is_listed_until_cleared(Arc::new(checkpoints)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_store_lists_what_it_keeps() {
    let dir = TempDir::new("listing");
    let checkpoints = open(&dir.file("events.db")).await.checkpoint_store();
    conformance::checkpoints::lists_checkpoints_parked_counts_and_lease_holders(Arc::new(
        checkpoints,
    ))
    .await;
}
