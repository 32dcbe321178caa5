//! The PostgreSQL stores: concurrency, conflicts, damaged rows.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_stress() {
    let Some(db) = db!("concurrency_stress") else {
        return;
    };
    let pool = db.pool(16).await;
    conformance::events::concurrent_writers_on_one_stream(
        Arc::new(db.store_on(&pool).await),
        32,
        25,
    )
    .await;
    conformance::events::concurrent_writers_on_many_streams(
        Arc::new(db.store_on(&pool).await),
        48,
        30,
    )
    .await;

    // Writers that expect nothing never conflict, and nothing is lost or doubled.
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Counter", "any");
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                store
                    .append(
                        &s,
                        ExpectedVersion::Any,
                        events(w * 100 + i..w * 100 + i + 2),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.load(&s, 1).await.unwrap();
    assert_eq!(stored.len(), 16 * 10 * 2);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
    // Each batch of two is contiguous in the stream.
    for pair in stored.chunks(2) {
        assert_eq!(
            pair[0].payload.to_value()["n"].as_u64().unwrap() + 1,
            pair[1].payload.to_value()["n"].as_u64().unwrap()
        );
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all, stored);
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn conflicts_are_typed_with_expected_and_actual() {
    let Some(db) = db!("conflicts_are_typed_with_expected_and_actual") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "c-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(4),
        ExpectedVersion::Exact(u64::MAX),
    ] {
        match store.append(&s, expected, events(3..4)).await {
            Err(StoreError::Conflict(conflict)) => assert_eq!(
                conflict,
                VersionConflict {
                    stream: s.clone(),
                    expected,
                    actual: 3
                }
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), 3);

    // A writer that goes around the store (a plain INSERT, uncommitted) takes version 4
    // while our append waits for it: the unique violation comes back as the same typed
    // conflict, with the actual version read again, and the store is not left locked.
    let mut raw = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO \"{}\".events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, recorded_at, payload) \
         VALUES ('Order', 'c-1', 4, gen_random_uuid(), 'Raw', 1, now(), '{{}}')",
        store.schema()
    ))
    .execute(&mut *raw)
    .await
    .unwrap();
    let racing = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            store
                .append(&s, ExpectedVersion::Exact(3), events(9..10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.commit().await.unwrap();
    match racing.await.unwrap() {
        Err(StoreError::Conflict(conflict)) => {
            assert_eq!(conflict.expected, ExpectedVersion::Exact(3));
            assert_eq!(conflict.actual, 4);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .append(&s, ExpectedVersion::Exact(4), events(4..5))
        .await
        .unwrap();
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 5);
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unreadable_rows_are_corrupt_errors_and_unstorable_values_serialize_errors() {
    let Some(db) = db!("unreadable_rows_are_corrupt_errors_and_unstorable_values_serialize_errors")
    else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "d-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();

    // NUL characters: PostgreSQL cannot store them; nothing is appended.
    for bad in [
        NewEvent::new("Bad", 1, json!({ "text": "a\u{0}b" })),
        NewEvent::new("Bad", 1, json!({ "k\u{0}": 1 })),
        NewEvent::new("Bad\u{0}", 1, json!({})),
        NewEvent::new("Bad", 1, json!({})).with_metadata(
            eventsource_runtime::event::Metadata::new().with("correlation_id", "x\u{0}"),
        ),
        // Metadata kept in its stored form (read from another tool): sent as it is. It
        // carries its trace context already, so no context written at append (with tracing
        // on) turns it into entries.
        NewEvent::new("Bad", 1, json!({})).with_metadata(
            eventsource_runtime::event::Metadata::from_json(
                r#"{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "origin": {"note": "a\u0000b"}}"#,
            )
            .unwrap(),
        ),
    ] {
        let refused = store
            .append(&s, ExpectedVersion::Exact(2), vec![event(2), bad])
            .await;
        assert!(
            matches!(refused, Err(StoreError::Serialize { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), 2);

    let damage = |sql: &str| {
        let sql = sql.replace("__events__", &format!("\"{}\".events", store.schema()));
        let pool = pool.clone();
        async move { sqlx::query(&sql).execute(&pool).await.unwrap() }
    };
    damage("UPDATE __events__ SET metadata = '[1, 2]' WHERE version = 2").await;
    let err = store.load(&s, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream, version: 2, position: 2, reason }
            if *stream == s && reason.starts_with("metadata")),
        "{err:?}"
    );
    // `read_all` returns the event before the damaged one, then names the damaged one.
    assert_eq!(positions(&store.read_all(0, 10).await.unwrap()), [1]);
    let batch = store.read_all(0, 10).await.unwrap();
    assert!(
        matches!(
            batch.end(),
            BatchEnd::Unreadable(StoreError::Corrupt { position: 2, .. })
        ),
        "the batch says why it ended: {:?}",
        batch.end()
    );
    assert!(matches!(
        store.read_all(2, 10).await,
        Err(StoreError::Corrupt {
            version: 2,
            position: 2,
            ..
        })
    ));
    assert!(store.load(&s, 1).await.is_err());
    assert_eq!(store.read_all(0, 1).await.unwrap().len(), 1);

    damage("UPDATE __events__ SET metadata = '{}', schema_version = -1 WHERE version = 2").await;
    assert!(matches!(
        store.load(&s, 2).await,
        Err(StoreError::Corrupt { version: 2, ref reason, .. }) if reason.starts_with("schema_version")
    ));
    damage("UPDATE __events__ SET schema_version = 1, payload = '\"x\"' WHERE version = 2").await;
    assert_eq!(store.load(&s, 2).await.unwrap()[0].payload, json!("x"));
    pool.close().await;
    db.cleanup().await;
}

/// A projection that records the positions it handled.
struct Seen {
    name: String,
    positions: Arc<Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Seen {
    fn name(&self) -> &str {
        &self.name
    }
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.positions.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// Issue 9's damaged database: eight good events, one whose metadata holds values that are
/// not strings (readable: they come back as JSON text), one with a negative schema version
/// (unreadable), two good ones after it, inserted with raw SQL. `read_all` returns the nine
/// before the unreadable one and then names it; a runner handles them and stops there
/// (`Stop`), or parks it in `parked_events` and goes on (`Park`), and handles it once the
/// row is repaired.
#[tokio::test]
async fn an_unreadable_row_after_good_ones_is_stopped_at_or_parked() {
    let Some(db) = db!("an_unreadable_row_after_good_ones_is_stopped_at_or_parked") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            events(0..8),
        )
        .await
        .unwrap();
    let raw = |sql: &str| {
        let sql = sql.replace("__events__", &format!("\"{}\".events", store.schema()));
        let pool = pool.clone();
        async move { sqlx::raw_sql(&sql).execute(&pool).await.unwrap() }
    };
    raw(
        "INSERT INTO __events__ (stream_type, stream_id, version, event_id, event_type, \
         schema_version, recorded_at, payload, metadata) VALUES \
         ('Order', 'legacy', 1, gen_random_uuid(), 'Imported', 1, now(), '{\"n\": 9}', \
          '{\"attempt\": 7, \"origin\": {\"app\": \"legacy\"}, \"gone\": null}'), \
         ('Order', 'legacy', 2, gen_random_uuid(), 'Imported', -1, now(), '{}', '{}')",
    )
    .await;
    store
        .append(
            &StreamId::new("Order", "o-2"),
            ExpectedVersion::NoStream,
            events(0..2),
        )
        .await
        .unwrap();

    // A metadata value that is not a string is read as its JSON text.
    let nine = &store.read_all(9, 1).await.unwrap()[0];
    assert_eq!(nine.metadata.get("attempt"), Some("7"));
    assert_eq!(nine.metadata.get("origin"), Some(r#"{"app":"legacy"}"#));
    assert_eq!(nine.metadata.get("gone"), Some("null"));

    // `read_all`: the nine good events, then the unreadable one named, then the rest.
    assert_eq!(
        positions(&store.read_all(0, 100).await.unwrap()),
        (1..=9).collect::<Vec<_>>()
    );
    let error = store.read_all(10, 100).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { position: 10, version: 2, reason, .. }
            if reason.starts_with("schema_version")),
        "{error:?}"
    );
    assert_eq!(positions(&store.read_all(11, 100).await.unwrap()), [11, 12]);

    // Stop (the default): the nine are handled, then a typed stop naming the event.
    let checkpoints = store.checkpoint_store();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runner = |policy| {
        ProjectionRunner::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Seen {
                name: "Seen".into(),
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
    // Listed by another process too.
    let elsewhere = PostgresCheckpointStore::from_pool(db.pool(1).await)
        .with_schema(store.schema())
        .unwrap();
    assert_eq!(elsewhere.parked("Seen").await.unwrap(), parked);
    assert!(elsewhere.parked("Other").await.unwrap().is_empty());

    // Repaired, the parked event is handed over and unparked.
    raw("UPDATE __events__ SET schema_version = 1 WHERE position = 10").await;
    assert!(parking.retry_parked().await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().last(), Some(&10));
    assert!(elsewhere.parked("Seen").await.unwrap().is_empty());
    assert!(!elsewhere.unpark("Seen", 10).await.unwrap());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 12);
    elsewhere.pool().close().await;
    pool.close().await;
    db.cleanup().await;
}

/// A NUL character in a stream id is one typed, non-transient error everywhere: loads and
/// version checks (which PostgreSQL used to refuse as `Unavailable`), appends (which were
/// `Serialize`), appends in the caller's transaction and the snapshot store. A NUL in the
/// event itself is still `Serialize`.
#[tokio::test]
async fn nul_in_a_stream_id_is_invalid_everywhere() {
    let Some(db) = db!("nul_in_a_stream_id_is_invalid_everywhere") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let stream = StreamId::new("Order", "o\u{0}1");
    let invalid = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::InvalidStreamId { .. })),
            "{what}: {result:?}"
        );
    };
    invalid(store.load(&stream, 1).await.map(drop), "load");
    invalid(store.stream_version(&stream).await.map(drop), "version");
    invalid(
        store
            .append(&stream, ExpectedVersion::Any, events(0..1))
            .await
            .map(drop),
        "append",
    );
    let mut tx = pool.begin().await.unwrap();
    invalid(
        store
            .append_in_transaction(&mut tx, &stream, ExpectedVersion::Any, events(0..1))
            .await
            .map(drop),
        "append in a transaction",
    );
    tx.rollback().await.unwrap();
    conformance::snapshots::nul_in_a_stream_id_is_invalid(Arc::new(store.snapshot_store())).await;

    let fine = StreamId::new("Order", "o-1");
    let refused = store
        .append(
            &fine,
            ExpectedVersion::Any,
            vec![NewEvent::new("Bad", 1, json!({ "text": "a\u{0}b" }))],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Serialize { .. })),
        "{refused:?}"
    );
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    pool.close().await;
    db.cleanup().await;
}

/// Appending in the caller's transaction commits and rolls back with it.
#[tokio::test]
async fn append_in_transaction_follows_the_callers_transaction() {
    let Some(db) = db!("append_in_transaction_follows_the_callers_transaction") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "tx");

    let mut tx = pool.begin().await.unwrap();
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    // Its own transaction sees the events; nobody else does yet.
    let inside: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".events",
        store.schema()
    ))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(inside, 3);
    assert_eq!(store.stream_version(&s).await.unwrap(), 0);
    tx.rollback().await.unwrap();
    assert_eq!(store.stream_version(&s).await.unwrap(), 0);
    assert!(store.read_all(0, 10).await.unwrap().is_empty());

    let mut tx = pool.begin().await.unwrap();
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    // A conflict inside the transaction is typed too.
    let conflict = store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(2..3))
        .await;
    assert!(matches!(
        conflict,
        Err(StoreError::Conflict(VersionConflict { actual: 2, .. }))
    ));
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::Exact(2), events(2..3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 3);
    pool.close().await;
    db.cleanup().await;
}
