//! Unreadable events: stopped at, or parked.

use super::*;

// ---- Unreadable events. --------------------------------------------------------------------

/// The in-memory store with events the test declares unreadable (as damaged rows are).
/// `read_all` follows the stores' rule (the events before an unreadable one; its error when
/// it comes first), or, `whole_batch`, fails any batch holding one, as a store written
/// before the rule might.
#[derive(Clone, Default)]
struct Damaged {
    store: InMemoryEventStore,
    unreadable: Arc<StdMutex<Vec<u64>>>,
    whole_batch: bool,
}

impl Damaged {
    fn damage(&self, position: u64) {
        self.unreadable.lock().unwrap().push(position);
    }
    fn repair(&self, position: u64) {
        self.unreadable.lock().unwrap().retain(|p| *p != position);
    }
}

#[eventsource_runtime::async_trait]
impl Intercept for Damaged {
    type Inner = InMemoryEventStore;
    fn inner(&self) -> &InMemoryEventStore {
        &self.store
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        let unreadable = self.unreadable.lock().unwrap().clone();
        let mut readable = Vec::new();
        for event in self.store.read_all(from, limit).await? {
            if unreadable.contains(&event.position) {
                let error = StoreError::Corrupt {
                    stream: event.stream,
                    version: event.version,
                    position: event.position,
                    reason: "schema_version: out of range integral type conversion".into(),
                };
                if readable.is_empty() || self.whole_batch {
                    return Err(error);
                }
                return Ok(ReadBatch::unreadable(readable, error));
            }
            readable.push(event);
        }
        Ok(ReadBatch::new(readable, limit))
    }
}

fn damaged_runner(
    store: &Damaged,
    checkpoints: &InMemoryCheckpointStore,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    runner_on(Over(store.clone()), checkpoints.clone(), projection)
        .batch_size(4)
        .poll_interval(Duration::from_millis(10))
}

#[tokio::test]
async fn an_unreadable_event_stops_the_runner_after_the_events_before_it() {
    for whole_batch in [false, true] {
        let damaged = Damaged {
            whole_batch,
            ..Damaged::default()
        };
        append(&damaged.store, "o-1", 12).await;
        damaged.damage(10);
        let checkpoints = InMemoryCheckpointStore::new();
        let recorder = Recorder::new("Stopped");

        let error = damaged_runner(&damaged, &checkpoints, recorder.clone())
            .run_until_caught_up()
            .await
            .unwrap_err();
        let RunnerError::UnreadableEvent {
            projection,
            position,
            source,
        } = &error
        else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!((projection.as_str(), *position), ("Stopped", 10));
        assert!(
            matches!(source, StoreError::Corrupt { position: 10, reason, .. } if reason.starts_with("schema_version")),
            "{source:?}"
        );
        assert_eq!(
            error.to_string(),
            "projection `Stopped` stopped: the stored event at position 10 is unreadable"
        );
        assert_eq!(
            recorder.handled(),
            positions(1..=9),
            "every event before the unreadable one (whole batch failing: {whole_batch})"
        );
        assert_eq!(checkpoints.load("Stopped").await.unwrap(), 9);
        assert!(checkpoints.parked("Stopped").await.unwrap().is_empty());

        // `run` stops the same way instead of following.
        let (_stop, stopped) = oneshot::channel::<()>();
        let again = tokio::time::timeout(
            Duration::from_secs(5),
            damaged_runner(&damaged, &checkpoints, recorder.instance()).run(stopped),
        )
        .await
        .expect("stops by itself")
        .unwrap_err();
        assert!(
            matches!(again, RunnerError::UnreadableEvent { position: 10, .. }),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn a_parked_event_is_listed_and_retried_and_the_rest_is_handled() {
    LazyLock::force(&METRICS);
    register_callsites();
    let capture = capture();
    let damaged = Damaged::default();
    append(&damaged.store, "o-1", 12).await;
    damaged.damage(10);
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Parking");
    let runner = damaged_runner(&damaged, &checkpoints, recorder.clone())
        .on_unreadable(UnreadablePolicy::Park);

    assert_eq!(runner.run_until_caught_up().await.unwrap(), 12);
    assert_eq!(recorder.handled(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    let parked = runner.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 10);
    assert!(
        parked[0].error.contains("position 10")
            && parked[0].error.contains("schema_version: out of range"),
        "{}",
        parked[0].error
    );
    assert_eq!(checkpoints.load("Parking").await.unwrap(), 12);
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_EVENTS_PARKED,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "Parking")]
        ),
        1
    );

    // An ERROR span, a root, says which event and why (projection spans being off).
    let spans = capture.spans();
    let park = spans.get(attr::SPAN_PROJECTION_PARK);
    assert!(spans.is_root(park), "{}", spans.tree());
    assert_eq!(kind(park), SpanKind::Internal);
    assert!(
        matches!(&park.status, Status::Error { description } if description.contains("position 10")),
        "{:?}",
        park.status
    );
    assert_eq!(attribute(park, attr::EVENT_POSITION), Some(&Value::I64(10)));
    assert_eq!(
        attribute(park, attr::PROJECTION_NAME),
        Some(&Value::String("Parking".into()))
    );
    assert_eq!(attribute(park, attr::EVENT_SEQUENCE), Some(&Value::I64(10)));
    assert_eq!(events(park, attr::SPAN_EVENT_EXCEPTION).len(), 1);

    // Still unreadable: a retry keeps it parked.
    let still = runner.retry_parked().await.unwrap();
    assert_eq!(still.iter().map(|p| p.position).collect::<Vec<_>>(), [10]);
    assert!(!recorder.handled().contains(&10));

    // Repaired: the retry hands it over and unparks it; the checkpoint stays.
    damaged.repair(10);
    assert!(runner.retry_parked().await.unwrap().is_empty());
    assert_eq!(recorder.handled().last(), Some(&10));
    assert!(runner.parked().await.unwrap().is_empty());
    assert_eq!(checkpoints.load("Parking").await.unwrap(), 12);

    // A parked event that is gone from the store is simply unparked.
    checkpoints
        .park("Parking", &ParkedEvent::new(99, "lost"))
        .await
        .unwrap();
    assert!(runner.retry_parked().await.unwrap().is_empty());
}

/// The error `projection` has parked event `position` with, if it is parked.
async fn parked_error(
    checkpoints: &InMemoryCheckpointStore,
    projection: &str,
    position: u64,
) -> Option<String> {
    let parked = checkpoints.parked(projection).await.unwrap();
    parked
        .into_iter()
        .find(|p| p.position == position)
        .map(|p| p.error)
}

/// Polls `done` (an async check) until it holds, for up to 5 s.
async fn eventually_async(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A retry asked of a following runner (`CheckpointStore::request_retry`, what `eventsource
/// parked retry` writes) is taken up on a poll: a handler that keeps failing on the event
/// parks it again with the handler's error and the runner goes on with new events; mended
/// and asked again, the event is handled and unparked. Nothing is retried unasked.
#[tokio::test]
async fn a_requested_retry_is_taken_up_by_the_following_runner() {
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    // Event 2 was parked while its row was damaged; the row is repaired since.
    let parked = ParkedEvent::new(2, "metadata: invalid type");
    checkpoints.park("Orders", &parked).await.unwrap();
    checkpoints.save("Orders", 3).await.unwrap();
    let mended = Arc::new(AtomicBool::new(false));
    let fixed = Arc::clone(&mended);
    let projection = Recorder::new("Orders")
        .failing(move |event, _| event.position == 2 && !fixed.load(Ordering::SeqCst));
    let running = runner(&store, &checkpoints, projection.clone())
        .on_unreadable(UnreadablePolicy::Park)
        .max_attempts(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        projection.calls.lock().unwrap().is_empty(),
        "not retried unasked"
    );

    assert!(checkpoints.request_retry("Orders", 2).await.unwrap());
    eventually_async("parked again with the handler's error", async || {
        parked_error(&checkpoints, "Orders", 2)
            .await
            .is_some_and(|error| error.contains("read model unavailable"))
    })
    .await;
    assert_eq!(*projection.calls.lock().unwrap(), [(2, 1), (2, 2)]);
    assert!(
        checkpoints
            .retry_requests("Orders")
            .await
            .unwrap()
            .is_empty()
    );
    append(&store, "o-2", 1).await;
    eventually("the runner goes on with a new event", || {
        projection.handled() == [4]
    })
    .await;

    mended.store(true, Ordering::SeqCst);
    assert!(checkpoints.request_retry("Orders", 2).await.unwrap());
    eventually("the mended handler handles it", || {
        projection.handled() == [4, 2]
    })
    .await;
    eventually_async("it is unparked", async || {
        parked_error(&checkpoints, "Orders", 2).await.is_none()
    })
    .await;
    assert!(!task.is_finished());
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        checkpoints.load("Orders").await.unwrap(),
        4,
        "the checkpoint does not move back"
    );
}

/// An event written by newer code (its schema version above the one this code knows, as in
/// a rolling deploy) that a `#[projection]`'s handler cannot decode is parked at its first
/// failure under `Park`, with why, and the events after it are handled; before, it was
/// retried and stopped the runner with `HandlerFailed`. Retried by the same code it stays
/// parked, with the same reason.
#[tokio::test]
async fn an_event_from_newer_code_is_parked_and_the_events_after_it_are_handled() {
    use eventsource_test_support::domain::{LineItem, OrderEvent, OrderPlaced, OrderReadModel};

    let store = InMemoryEventStore::new();
    let placed = |customer: &str| OrderPlaced {
        customer_id: customer.to_owned(),
        items: vec![LineItem {
            sku: "sku-1".into(),
            quantity: 1,
            unit_price_cents: 100,
        }],
        shipping_address: "1 Main St".into(),
        total_cents: 100,
    };
    for (order, customer, schema_version) in
        [("o-1", "c-1", 1), ("o-2", "c-2", 2), ("o-3", "c-3", 1)]
    {
        let mut event = NewEvent::from_event(&OrderEvent::from(placed(customer))).unwrap();
        event.schema_version = schema_version;
        store
            .append(
                &StreamId::new("Order", order),
                ExpectedVersion::NoStream,
                vec![event],
            )
            .await
            .unwrap();
    }
    let checkpoints = InMemoryCheckpointStore::new();
    let runner = ProjectionRunner::new(
        Arc::new(store),
        Arc::new(checkpoints.clone()),
        OrderReadModel::default(),
    )
    .on_unreadable(UnreadablePolicy::Park);

    let caught_up = tokio::time::timeout(Duration::from_secs(5), runner.run_until_caught_up())
        .await
        .expect("parked at once, not retried with backoff")
        .unwrap();
    assert_eq!(caught_up, 3);
    let orders: Vec<String> = (runner.projection().lock().await.orders.keys().cloned()).collect();
    assert_eq!(orders, ["o-1", "o-3"]);
    let parked = runner.parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].position, 2);
    assert!(
        parked[0]
            .error
            .contains("version 2 of `OrderPlaced` is newer than this code's version 1"),
        "{}",
        parked[0].error
    );
    assert_eq!(checkpoints.load("OrderReadModel").await.unwrap(), 3);

    let still = runner.retry_parked().await.unwrap();
    assert_eq!(still.len(), 1, "{still:?}");
    assert_eq!(still[0].error, parked[0].error);
    let orders = runner.projection().lock().await.orders.len();
    assert_eq!(
        orders, 2,
        "the event is not handled by retrying with the same code"
    );
}
