//! Failures: retries, the typed stop, shutdown during backoff, a store in trouble.

use super::*;

// ---- Failures: retries, the typed stop, shutdown during backoff. ---------------------------

#[tokio::test]
async fn a_handler_failing_twice_then_succeeding_is_retried_in_order() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 4).await;
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let mut recorder =
        Recorder::new("Orders").failing(|e, attempt| e.position == 2 && attempt <= 2);
    recorder.checkpoints = Some((checkpoints.clone(), Arc::clone(&seen)));

    let reached = runner(&store, &checkpoints, recorder.clone())
        .batch_size(1) // a checkpoint per event, to watch it
        .max_attempts(3)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 4);
    assert_eq!(
        recorder.handled(),
        positions(1..=4),
        "in order, none skipped"
    );
    assert_eq!(
        *recorder.calls.lock().unwrap(),
        [(1, 1), (2, 1), (2, 2), (2, 3), (3, 1), (4, 1)]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [1, 1],
        "while event 2 failed, the checkpoint stayed before it"
    );
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 4);
}

#[tokio::test]
async fn after_max_attempts_the_runner_stops_with_a_typed_error_before_the_event() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 5).await;
    let recorder = Recorder::new("Orders").failing(|e, _| e.position == 3);

    let error = runner(&store, &checkpoints, recorder.clone())
        .max_attempts(4)
        .run_until_caught_up()
        .await
        .unwrap_err();
    let RunnerError::HandlerFailed {
        projection,
        position,
        event_type,
        attempts,
        source,
    } = &error
    else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(projection, "Orders");
    assert_eq!(*position, 3);
    assert_eq!(event_type, "OrderPlaced");
    assert_eq!(*attempts, 4);
    assert_eq!(source.to_string(), "read model unavailable (attempt 4)");
    assert!(error.to_string().contains("failed 4 times"), "{error}");
    assert_eq!(
        recorder.handled(),
        [1, 2],
        "nothing after the failing event"
    );
    assert_eq!(
        checkpoints.load("Orders").await.unwrap(),
        2,
        "the checkpoint points before the failing event"
    );

    // `run` stops with the same error instead of following.
    let (_stop, stopped) = oneshot::channel::<()>();
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        runner(&store, &checkpoints, recorder.instance())
            .max_attempts(2)
            .run(stopped),
    )
    .await
    .expect("stops by itself")
    .unwrap_err();
    assert!(matches!(
        error,
        RunnerError::HandlerFailed {
            position: 3,
            attempts: 2,
            ..
        }
    ));

    // Fixed, the next run starts with the failing event.
    let fixed = Recorder::new("Orders");
    runner(&store, &checkpoints, fixed.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(fixed.handled(), positions(3..=5));
}

/// What an operator's `status` reads of it: the runner that stopped recorded why (with
/// the error's sources) before letting its lease go; a graceful stop records nothing; the
/// next runner to take the projection clears it.
#[tokio::test]
async fn a_runner_that_stops_on_an_error_records_why_until_the_next_takes_it() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    let stopped_on = async || {
        let records = checkpoints.checkpoints().await.unwrap();
        let record = records.into_iter().find(|r| r.projection == "Orders");
        record.and_then(|record| record.stopped)
    };

    let failing = Recorder::new("Orders").failing(|e, _| e.position == 2);
    let error = runner(&store, &checkpoints, failing)
        .max_attempts(2)
        .run_until_caught_up()
        .await
        .unwrap_err();
    let stop = stopped_on().await.expect("recorded");
    assert_eq!(
        stop.error,
        format!("{error}: read model unavailable (attempt 2)"),
        "the error and its source, on one line"
    );
    assert!(stop.at <= chrono::Utc::now());

    // A graceful stop of the next runner: it took the projection, so the record is gone,
    // and stopping on shutdown records nothing.
    let (stop_it, stopped) = oneshot::channel::<()>();
    let fixed = Recorder::new("Orders");
    let running = tokio::spawn({
        let (store, checkpoints, fixed) = (store.clone(), checkpoints.clone(), fixed.clone());
        async move { runner(&store, &checkpoints, fixed).run(stopped).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fixed.handled().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handled by the next runner"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        stopped_on().await,
        None,
        "cleared by the runner that took it"
    );
    stop_it.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(stopped_on().await, None, "a graceful stop is not recorded");
}

#[tokio::test]
async fn shutdown_interrupts_a_backoff_wait() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    let recorder = Recorder::new("Orders").failing(|e, _| e.position == 2);
    let running = runner(&store, &checkpoints, recorder.clone())
        .max_attempts(100)
        .backoff(Duration::from_secs(30), Duration::from_secs(30));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    eventually("the first failure", || {
        recorder.calls.lock().unwrap().len() == 2
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("not waiting out the 30 s backoff")
        .unwrap()
        .unwrap();
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 1);
}

// ---- Store trouble. ------------------------------------------------------------------------

/// The in-memory store, unavailable for the first `outages` reads.
#[derive(Debug, Clone)]
struct Flaky {
    store: InMemoryEventStore,
    outages: Arc<AtomicUsize>,
}

#[eventsource_runtime::async_trait]
impl Intercept for Flaky {
    type Inner = InMemoryEventStore;
    fn inner(&self) -> &InMemoryEventStore {
        &self.store
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        let down = self
            .outages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if down {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.store.read_all(from, limit).await
    }
}

#[tokio::test]
async fn an_unavailable_store_is_waited_for_unless_told_otherwise() {
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let flaky = |outages| {
        Over(Flaky {
            store: store.clone(),
            outages: Arc::new(AtomicUsize::new(outages)),
        })
    };
    let flaky_runner = |outages, recorder: Recorder| {
        ProjectionRunner::new(
            Arc::new(flaky(outages)),
            Arc::new(checkpoints.clone()),
            recorder,
        )
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
    };

    // Three outages in a row, limited to three attempts: a typed stop.
    let recorder = Recorder::new("Orders");
    let error = flaky_runner(3, recorder.clone())
        .max_store_attempts(3)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            RunnerError::Store {
                operation: "read_all",
                source: StoreError::Unavailable(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(recorder.handled().is_empty());

    // By default the runner waits for the store to come back.
    let reached = flaky_runner(10, recorder.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 3);
    assert_eq!(recorder.handled(), positions(1..=3));
}
