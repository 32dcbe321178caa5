//! The PostgreSQL stores: faults.

use super::*;

/// `connect`'s pool pings a connection that sat idle for `PING_AFTER_IDLE` or longer before
/// handing it out: one the server dropped meanwhile (a restart, an administrator) is
/// replaced, and the append goes through.
#[tokio::test]
async fn connect_replaces_a_connection_the_server_dropped_while_it_sat_idle() {
    let Some(db) = db!("connect_replaces_a_connection_the_server_dropped_while_it_sat_idle") else {
        return;
    };
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={}", db.url, db.app);
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&db.schema())
        .unwrap();
    store.migrate().await.unwrap();
    let s = StreamId::new("Idle", "1");
    store
        .append(&s, ExpectedVersion::Exact(0), events(0..1))
        .await
        .unwrap();

    assert!(db.terminate_backends().await > 0, "the pool's connections");
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(100)).await;
    let appended = store
        .append(&s, ExpectedVersion::Exact(1), events(1..2))
        .await
        .expect("a dropped idle connection is replaced, not used");
    assert_eq!(appended.version, 2);
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 2);
    store.close().await;
    db.cleanup().await;
}

/// The database goes away under running writers (their backends are terminated, then the
/// pool is closed): appends fail with `Unavailable`, no batch is ever half stored, and a
/// new pool carries on where the data left off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_are_unavailable_errors_and_never_leave_half_a_batch() {
    let Some(db) = db!("faults_are_unavailable_errors_and_never_leave_half_a_batch") else {
        return;
    };
    const BATCH: u64 = 10;
    let pool = db.pool(6).await;
    let store = db.store_on(&pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let s = StreamId::new("Fault", format!("w{w}"));
            let (mut ok, mut unavailable) = (Vec::new(), 0u64);
            let mut batch = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let sent: Vec<NewEvent> = (0..BATCH)
                    .map(|i| NewEvent::new("Counted", 1, json!({ "batch": batch, "i": i })))
                    .collect();
                match store.append(&s, ExpectedVersion::Any, sent).await {
                    Ok(_) => ok.push(batch),
                    Err(StoreError::Unavailable(_)) => {
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(other) => panic!("a fault must be Unavailable, got {other:?}"),
                }
                batch += 1;
            }
            (s, ok, unavailable)
        }));
    }
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        db.terminate_backends().await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    store.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Closed: every operation is Unavailable, none hangs.
    assert!(matches!(
        store
            .append(
                &StreamId::new("Fault", "closed"),
                ExpectedVersion::Any,
                events(0..1)
            )
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read_all(0, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    stop.store(true, Ordering::SeqCst);

    let mut results = Vec::new();
    for writer in writers {
        results.push(writer.await.unwrap());
    }
    let failures: u64 = results.iter().map(|r| r.2).sum();
    assert!(failures > 0, "the faults did not hit any append");

    // A new pool, as after the database came back.
    let pool = db.pool(4).await;
    let back = PostgresEventStore::from_pool(pool.clone())
        .with_schema(store.schema())
        .unwrap();
    back.migrate().await.unwrap();
    let mut total = 0;
    for (s, ok, _) in &results {
        let stored = back.load(s, 1).await.unwrap();
        assert_eq!(stored.len() as u64 % BATCH, 0, "half a batch in {s}");
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64 + 1)
        );
        let mut batches = Vec::new();
        for chunk in stored.chunks(BATCH as usize) {
            let batch = chunk[0].payload.to_value()["batch"].as_u64().unwrap();
            for (i, e) in chunk.iter().enumerate() {
                assert_eq!(
                    e.payload,
                    json!({ "batch": batch, "i": i }),
                    "mixed batches"
                );
            }
            batches.push(batch);
        }
        // Every acknowledged batch is there (and an unacknowledged one may be, when the
        // connection died during its commit).
        for b in ok {
            assert!(batches.contains(b), "acknowledged batch {b} of {s} lost");
        }
        total += stored.len();
    }
    let all = back.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), total);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let s = StreamId::new("Fault", "w0");
    let version = back.stream_version(&s).await.unwrap();
    back.append(&s, ExpectedVersion::Exact(version), events(0..1))
        .await
        .unwrap();
    pool.close().await;
    db.cleanup().await;
}
