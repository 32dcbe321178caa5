//! Damaged rows: typed errors, never panics; a runner stops at or parks what it cannot read.

use super::*;

// ---- damaged rows ----------------------------------------------------------------------------

#[tokio::test]
async fn a_damaged_row_is_a_typed_error_not_a_panic() {
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "c");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..4))
        .await
        .unwrap();
    execute(
        &store,
        "UPDATE events SET payload = '{not json' WHERE stream_id = 'c' AND version = 2",
    )
    .await;

    let corrupt = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt {
            stream,
            version,
            reason,
            ..
        }) => (stream, version, reason),
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    };
    let (stream, version, reason) = corrupt(store.load(&s, 1).await);
    assert_eq!((stream, version), (s.clone(), 2));
    assert!(reason.starts_with("payload"), "{reason}");
    // `read_all` returns the event before the damaged one, then names the damaged one.
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
    let batch = store.read_all(0, 100).await.unwrap();
    assert!(
        matches!(
            batch.end(),
            BatchEnd::Unreadable(StoreError::Corrupt { position: 2, .. })
        ),
        "the batch says why it ended: {:?}",
        batch.end()
    );
    assert_eq!(corrupt(store.read_all(2, 100).await.map(Vec::from)).1, 2);
    // Reads that do not touch the damaged row work.
    assert_eq!(store.load(&s, 3).await.unwrap().len(), 2);
    assert_eq!(store.read_all(3, 100).await.unwrap().len(), 2);
    assert_eq!(store.stream_version(&s).await.unwrap(), 4);

    for (column, value, version) in [
        ("metadata", "'[1, 2]'", 3),
        ("timestamp", "'yesterday'", 3),
        ("event_id", "'not-a-uuid'", 3),
        ("payload", "x'00ff'", 4),
        ("schema_version", "-1", 4),
    ] {
        execute(
            &store,
            &format!(
                "UPDATE events SET {column} = {value} WHERE stream_id = 'c' AND version = {version}"
            ),
        )
        .await;
        let (stream, found, reason) = corrupt(store.load(&s, version).await);
        assert_eq!((stream, found), (s.clone(), version));
        assert!(reason.starts_with(column), "{column}: {reason}");
    }
}

#[tokio::test]
async fn a_damaged_row_reaches_the_repository_as_a_typed_error() {
    let store = open(":memory:").await;
    // No cache: it would decide from the state it kept before the damage, reading only
    // the rows after it.
    let orders = CommandService::with_repository(
        Repository::<Order>::new(store.clone()).with_cache(0),
        eventsource_runtime::projection::ProjectionRegistry::new(),
    );
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    execute(
        &store,
        "UPDATE events SET payload = 'garbage' WHERE stream_id = 'o-1'",
    )
    .await;

    let loaded = Repository::<Order>::new(store.clone()).load("o-1").await;
    assert!(
        matches!(
            &loaded,
            Err(RepositoryError::Store(StoreError::Corrupt {
                version: 1,
                ..
            }))
        ),
        "{loaded:?}"
    );
    let shipped = orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await;
    assert!(
        matches!(
            &shipped,
            Err(CommandError::Repository(RepositoryError::Store(
                StoreError::Corrupt { .. }
            )))
        ),
        "{shipped:?}"
    );
    assert_eq!(
        store
            .stream_version(&StreamId::new("Order", "o-1"))
            .await
            .unwrap(),
        1,
        "nothing appended"
    );
}

/// A projection that records the positions it handled.
struct Seen {
    positions: Arc<std::sync::Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Seen {
    fn name(&self) -> &str {
        "Seen"
    }
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.positions.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// Issue 9's damaged database: good events, one whose metadata holds values that are not
/// strings (readable: they come back as JSON text), one with a negative schema version
/// (unreadable), and good events after it. `read_all` returns every event before the
/// unreadable one, then names it; a runner handles them and stops there (`Stop`), or parks
/// it and goes on (`Park`), and handles it once the row is repaired.
#[tokio::test]
async fn an_unreadable_row_after_good_ones_is_stopped_at_or_parked() {
    let store = open(":memory:").await;
    store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            batch(0..8),
        )
        .await
        .unwrap();
    execute(
        &store,
        "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, timestamp, payload, metadata) VALUES \
         ('Order', 'legacy', 1, '0190a000-0000-7000-8000-000000000001', 'Imported', 1, \
          '2025-01-31T12:00:00.000000000Z', '{\"n\": 9}', \
          '{\"attempt\": 7, \"origin\": {\"app\": \"legacy\"}, \"gone\": null}'), \
         ('Order', 'legacy', 2, '0190a000-0000-7000-8000-000000000002', 'Imported', -1, \
          '2025-01-31T12:00:01.000000000Z', '{}', '{}')",
    )
    .await;
    store
        .append(
            &StreamId::new("Order", "o-2"),
            ExpectedVersion::NoStream,
            batch(0..2),
        )
        .await
        .unwrap();

    // A metadata value that is not a string is read as its JSON text.
    let legacy = store
        .load(&StreamId::new("Order", "legacy"), 1)
        .await
        .unwrap_err();
    assert!(matches!(legacy, StoreError::Corrupt { version: 2, .. }));
    let nine = &store.read_all(9, 1).await.unwrap()[0];
    assert_eq!(nine.metadata.get("attempt"), Some("7"));
    assert_eq!(nine.metadata.get("origin"), Some(r#"{"app":"legacy"}"#));
    assert_eq!(nine.metadata.get("gone"), Some("null"));

    // `read_all`: the nine good events, then the unreadable one named, then the rest.
    let before: Vec<u64> = store
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(before, (1..=9).collect::<Vec<_>>());
    let error = store.read_all(10, 100).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { position: 10, version: 2, reason, .. }
            if reason.starts_with("schema_version")),
        "{error:?}"
    );
    assert!(error.to_string().contains("at position 10"), "{error}");
    assert_eq!(store.read_all(11, 100).await.unwrap().len(), 2);

    // Stop (the default): the nine are handled, then a typed stop naming the event.
    let checkpoints = store.checkpoint_store();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runner = |policy| {
        ProjectionRunner::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Seen {
                positions: Arc::clone(&seen),
            },
        )
        .batch_size(4)
        .on_unreadable(policy)
    };
    let stopped = runner(UnreadablePolicy::Stop)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(&stopped, RunnerError::UnreadableEvent { position: 10, .. }),
        "{stopped:?}"
    );
    assert_eq!(*seen.lock().unwrap(), (1..=9).collect::<Vec<_>>());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 9);

    // Park: kept in the parked_events table with its error; the rest is handled.
    let parking = runner(UnreadablePolicy::Park);
    assert_eq!(parking.run_until_caught_up().await.unwrap(), 12);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    let parked = parking.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 10);
    assert!(
        parked[0].error.contains("schema_version"),
        "{}",
        parked[0].error
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE projection = 'Seen'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(rows, 1);

    // Repaired, the parked event is handed over and unparked.
    execute(
        &store,
        "UPDATE events SET schema_version = 1 WHERE position = 10",
    )
    .await;
    assert!(parking.retry_parked().await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().last(), Some(&10));
    assert!(checkpoints.parked("Seen").await.unwrap().is_empty());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 12);
}

/// Parked events per projection (the suite's): they survive reopening the file.
#[tokio::test]
async fn parked_events_are_kept_per_projection() {
    let dir = TempDir::new("parked");
    let path = dir.file("events.db");
    let checkpoints = open(&path).await.checkpoint_store();
    let parking = checkpoints.clone();
    conformance::checkpoints::parked_events_are_kept_per_projection(
        Arc::new(checkpoints),
        async |_| {
            parking.pool().close().await;
            Arc::new(open(&path).await.checkpoint_store()) as Arc<dyn CheckpointStore>
        },
    )
    .await;
}

/// An operator's retry requests (the suite's), in the migrated file.
#[tokio::test]
async fn retry_requests_are_kept_with_the_parked_event() {
    let dir = TempDir::new("retry-requests");
    let checkpoints = open(&dir.file("events.db")).await.checkpoint_store();
    conformance::checkpoints::retry_requests_are_kept_with_the_parked_event(Arc::new(checkpoints))
        .await;
}

/// A NUL character in a stream id is the same typed error for the snapshot store as for
/// the event store (the conformance suite checks the event store).
#[tokio::test]
async fn nul_in_a_stream_id_is_invalid_for_snapshots_too() {
    let store = open(":memory:").await;
    conformance::snapshots::nul_in_a_stream_id_is_invalid(Arc::new(store.snapshot_store())).await;
}
