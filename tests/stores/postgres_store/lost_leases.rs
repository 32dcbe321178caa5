//! The PostgreSQL stores: projection runners: lost leases.

use super::*;

/// What every instance of a [`Tracker`] shares.
#[derive(Default)]
struct Tracks {
    /// Handler calls in flight, per event position.
    in_flight: Mutex<HashMap<u64, u32>>,
    /// Calls that found another call on the same event in flight.
    same_event_overlaps: AtomicU64,
    /// Calls in flight, whatever the event, and the most ever at once.
    running: AtomicU64,
    most_running: AtomicU64,
    /// Every call: (runner, position).
    calls: Mutex<Vec<(&'static str, u64)>>,
}

impl Tracks {
    fn calls_of(&self, runner: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| *r == runner)
            .count()
    }

    fn handled(&self) -> HashSet<u64> {
        self.calls.lock().unwrap().iter().map(|(_, p)| *p).collect()
    }
}

/// A projection that tracks its handler calls across runners; each call does a little
/// work (100 µs).
struct Tracker {
    name: String,
    runner: &'static str,
    tracks: Arc<Tracks>,
}

#[eventsource_runtime::async_trait]
impl Projection for Tracker {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        let tracks = &self.tracks;
        {
            let mut in_flight = tracks.in_flight.lock().unwrap();
            let calls = in_flight.entry(event.position).or_default();
            *calls += 1;
            if *calls > 1 {
                tracks.same_event_overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        let running = tracks.running.fetch_add(1, Ordering::SeqCst) + 1;
        tracks.most_running.fetch_max(running, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(100));
        tracks
            .calls
            .lock()
            .unwrap()
            .push((self.runner, event.position));
        tracks.running.fetch_sub(1, Ordering::SeqCst);
        *tracks
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&event.position)
            .unwrap() -= 1;
        Ok(())
    }
}

/// Waits (up to 30 s) until `check` holds.
async fn eventually_long(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The fault of issue 9: the first runner's lease session is terminated
/// (`pg_terminate_backend`) while it works through a backlog under load and its process
/// lives on, with a second runner waiting. The first stops before its next handler call
/// and says so; the second takes over; no event is ever handled by both at once; every
/// event is handled. Then the second's session is terminated while it follows: it takes
/// the lease again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_whose_lease_session_is_terminated_stops_and_another_takes_over() {
    let Some(db) = db!("a_runner_whose_lease_session_is_terminated_stops_and_another_takes_over")
    else {
        return;
    };
    let metrics = capture_metrics();
    let writer_pool = db.pool(4).await;
    let store = db.store_on(&writer_pool).await;
    let schema = store.schema().to_owned();
    for batch in 0..40_u64 {
        let stream = StreamId::new("Order", format!("o-{}", batch % 20));
        store
            .append(&stream, ExpectedVersion::Any, events(0..50))
            .await
            .unwrap();
    }

    let tracks = Arc::new(Tracks::default());
    let projection = unique("Tracked");
    let runner = |runner: &'static str, pool: &PgPool| {
        let events = PostgresEventStore::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap()
            .enable_tracing(false);
        let checkpoints = events.checkpoint_store();
        let tracker = Tracker {
            name: projection.clone(),
            runner,
            tracks: Arc::clone(&tracks),
        };
        ProjectionRunner::new(Arc::new(events), Arc::new(checkpoints), tracker)
            .batch_size(100)
            .poll_interval(Duration::from_millis(20))
            .lease_retry_interval(Duration::from_millis(20))
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
    };
    let (pool_a, pool_b) = (db.pool_named(4, "a").await, db.pool_named(4, "b").await);

    // The first runner works through the backlog...
    let first = runner("a", &pool_a);
    let first = tokio::spawn(async move { first.run_until_caught_up().await });
    eventually_long("the first runner under way", || tracks.calls_of("a") >= 300).await;
    // ...the second waits for the lease while writers keep appending.
    let second = runner("b", &pool_b);
    let (stop_second, second_stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(async move { second.run(second_stopped).await });
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for batch in 0..100_u64 {
                let stream = StreamId::new("Order", format!("w-{}", batch % 7));
                store
                    .append(&stream, ExpectedVersion::Any, events(0..10))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    eventually_long("the first runner deep in the backlog", || {
        tracks.calls_of("a") >= 800
    })
    .await;
    assert_eq!(tracks.calls_of("b"), 0, "the second waits");

    // The first runner's lease session is terminated; its process lives on.
    let lease = db
        .lease_backend("a")
        .await
        .expect("the first holds the lease");
    db.terminate(lease).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first runner stops by itself")
        .unwrap();
    let calls_of_first = tracks.calls_of("a");
    match stopped {
        Err(RunnerError::LeaseLost { projection: name }) => assert_eq!(name, projection),
        other => panic!("expected RunnerError::LeaseLost, got {other:?}"),
    }
    assert!(
        calls_of_first < 3_000,
        "stopped mid-stream: {calls_of_first}"
    );

    // The second takes over; then its own session is terminated while it follows.
    eventually_long("the second runner to take over", || {
        tracks.calls_of("b") > 0
    })
    .await;
    let lease = db
        .lease_backend("b")
        .await
        .expect("the second holds the lease");
    db.terminate(lease).await;
    writer.await.unwrap();
    let all: HashSet<u64> = store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(all.len(), 3_000);
    eventually_long("every event handled", || tracks.handled() == all).await;
    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();

    assert_eq!(
        tracks.same_event_overlaps.load(Ordering::SeqCst),
        0,
        "no event handled by both runners at once"
    );
    assert_eq!(
        tracks.most_running.load(Ordering::SeqCst),
        1,
        "never two handler calls at once"
    );
    assert_eq!(
        tracks.calls_of("a"),
        calls_of_first,
        "the first made no call after it stopped"
    );
    assert_eq!(
        metrics.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, &projection)]
        ),
        2,
        "both losses reported"
    );
    let checkpoints = store.checkpoint_store();
    assert_eq!(
        checkpoints.load(&projection).await.unwrap(),
        *all.iter().max().unwrap()
    );
    let total = tracks.calls.lock().unwrap().len();
    let line = format!(
        "lease loss under load: {total} handler calls for 3000 events \
         (first runner {calls_of_first}, then the second, whose lease was lost once too)\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    for pool in [pool_a, pool_b, writer_pool] {
        pool.close().await;
    }
    db.cleanup().await;
}

/// A checkpoint save as the lease's holder goes through the lease's own session, so it
/// fails once that session is gone, even before the lease has noticed.
#[tokio::test]
async fn a_leased_save_fails_once_the_session_is_gone() {
    let Some(db) = db!("a_leased_save_fails_once_the_session_is_gone") else {
        return;
    };
    let pool = db.pool_named(2, "saver").await;
    let checkpoints = PostgresCheckpointStore::from_pool(pool.clone())
        .with_schema(&db.schema())
        .unwrap();
    checkpoints.migrate().await.unwrap();
    let lease = checkpoints.try_acquire("orders").await.unwrap().unwrap();
    checkpoints.save_leased(&*lease, "orders", 5).await.unwrap();
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5);

    let backend = db.lease_backend("saver").await.unwrap();
    db.terminate(backend).await;
    // Whether or not the lease has noticed yet, nothing is saved.
    let refused = checkpoints.save_leased(&*lease, "orders", 9).await;
    assert!(
        matches!(&refused, Err(StoreError::LeaseLost { projection }) if projection == "orders"),
        "{refused:?}"
    );
    assert!(!lease.is_held());
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5);
    // A plain save (no lease) still works: the store's pool is not the lease's session.
    checkpoints.save("orders", 6).await.unwrap();
    lease.release().await;
    pool.close().await;
    db.cleanup().await;
}

/// Collects what is logged, as text.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_migration_with_nothing_to_do_logs_nothing() {
    let Some(db) = db!("a_migration_with_nothing_to_do_logs_nothing") else {
        return;
    };
    let pool = db.pool(2).await;
    let store = PostgresEventStore::from_pool(pool.clone())
        .with_schema(&db.schema())
        .unwrap();
    store.migrate().await.unwrap();
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    {
        let _default = tracing::subscriber::set_default(subscriber);
        // A second process starting on the same database: every table exists.
        store.migrate().await.unwrap();
        store.snapshot_store().migrate().await.unwrap();
        store.checkpoint_store().migrate().await.unwrap();
    }
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("already exists"), "{text}");
    assert!(!text.contains("sqlx::postgres::notice"), "{text}");
    pool.close().await;
    db.cleanup().await;
}
