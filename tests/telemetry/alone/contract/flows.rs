//! The flows the contract describes, run in memory (and SQLite in memory for parking).

use super::*;

/// `OrderReadModel` with its spans on, as `#[projection(enable_tracing = true)]` does.
#[derive(Default)]
pub(super) struct TracedReadModel(OrderReadModel);

#[eventsource_runtime::async_trait]
impl Projection for TracedReadModel {
    fn name(&self) -> &str {
        "OrderReadModel"
    }
    fn tracing_enabled(&self) -> bool {
        true
    }
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.0.handle(event).await
    }
}

/// A projection taking up to 16 events per call (as the relay does).
#[derive(Default)]
struct EventCounter(usize);

#[eventsource_runtime::async_trait]
impl Projection for EventCounter {
    fn name(&self) -> &str {
        "EventCounter"
    }
    fn tracing_enabled(&self) -> bool {
        true
    }
    fn max_batch(&self) -> usize {
        16
    }
    async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
        self.0 += 1;
        Ok(())
    }
}

/// Runs `projection` split into two segments on one worker until it handled `events`.
async fn split_in_two<P: Projection>(
    store: &InMemoryEventStore,
    projection: P,
    events: u64,
    handled: impl Fn(&P) -> usize,
) {
    let split = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        projection,
    )
    .segmented(Arc::new(InMemorySegmentClaims::new()), 2)
    .rebalance_interval(Duration::from_millis(10));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let all_handled = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while handled(&*split.projection().lock().await) < usize::try_from(events).unwrap() {
            assert!(Instant::now() < deadline, "the split projection catches up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).unwrap();
    };
    let (outcome, ()) = tokio::join!(split.run(stopped), all_handled);
    outcome.unwrap();
}

/// A projection taking one event per call, split into segments.
#[derive(Default)]
struct OneAtATime(usize);

#[eventsource_runtime::async_trait]
impl Projection for OneAtATime {
    fn name(&self) -> &str {
        "OneAtATime"
    }
    fn tracing_enabled(&self) -> bool {
        true
    }
    async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
        self.0 += 1;
        Ok(())
    }
}

#[traced(name = "contract.lookup", fields(order = %id), ret)]
async fn lookup(id: &str) -> usize {
    price(id.len())
}

#[traced(attributes("currency" = "EUR"))]
fn price(items: usize) -> usize {
    items * 100
}

/// A broker that refuses every message, recording its publish spans as an adapter does.
struct Refusing(BusTelemetry);

#[eventsource_runtime::async_trait]
impl EventBus for Refusing {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let mut message = BusMessage::new("orders-refused", events[0].clone());
        let refused = Err(BusError::unavailable("connection refused"));
        instrument::start_publish(&self.0, &mut message).end(&refused);
        refused
    }
}

/// A handler that fails its first call, then succeeds (one redelivery).
fn flaky(name: &'static str) -> impl EventHandler {
    let calls = Arc::new(AtomicUsize::new(0));
    handler_fn(name, move |_event| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                Err(HandlerError::new("stock service busy"))
            } else {
                Ok(())
            }
        }
    })
}

/// Runs every flow the contract describes, in memory (and SQLite in memory for parking).
pub(super) async fn run_the_flows() {
    let store = InMemoryEventStore::new();
    let snapshots = InMemorySnapshotStore::new();
    let repository = Repository::<Order>::new(store.clone())
        .with_snapshots(snapshots.clone(), 2)
        .trace_replay(true);
    let projections = ProjectionRegistry::new();
    let bus = InMemoryEventBus::new()
        .with_destination("orders")
        .with_max_deliveries(3);
    bus.subscribe_fn("send-confirmation", |_event| async {
        Ok::<(), HandlerError>(())
    });
    bus.subscribe(flaky("reserve-stock"));
    bus.subscribe(Idempotent::new(
        handler_fn("audit", |_event| async { Ok::<(), HandlerError>(()) }),
        InMemoryProcessedMessages::new(),
    ));
    let orders = CommandService::with_repository(repository, projections).with_bus(bus.clone());
    orders.register(TracedReadModel::default());

    // Commands: placed, shipped (a snapshot), a rejected cancel, a retried command id.
    orders
        .execute(domain::sample_order("o-1", "ada"))
        .await
        .unwrap();
    orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap();
    let rejected = orders
        .execute(CancelOrder {
            order_id: "o-1".into(),
            reason: "too late".into(),
        })
        .await;
    assert!(rejected.is_err());
    for _ in 0..2 {
        orders
            .execute_once("req-2", domain::sample_order("o-2", "bob"))
            .await
            .unwrap();
    }
    assert!(orders.repository().exists("o-1").await.unwrap());
    let o1 = StreamId::new("Order", "o-1");
    assert!(snapshots.exists(&o1).await.unwrap());
    snapshots.delete(&o1).await.unwrap();

    // The bus: a replay of everything stored (the idempotent handler's duplicates).
    let stored = store.read_all(1, 100).await.unwrap();
    // Lineage: the events of the first command's correlation id.
    let correlation_id = stored[0].metadata.correlation_id().unwrap().to_owned();
    let correlated = store.events_by_correlation(&correlation_id).await.unwrap();
    assert_eq!(correlated.len(), 1);
    assert!(bus.replay(&stored).await.is_empty());

    // A batch delivery.
    let batching = InMemoryEventBus::new()
        .with_destination("orders-batch")
        .with_batch_delivery(true);
    batching.subscribe_fn("bulk-export", |_event| async { Ok::<(), HandlerError>(()) });
    CommandService::<Order>::new(store.clone())
        .with_bus(batching)
        .execute_with("o-3", |_| {
            Ok::<_, Infallible>(vec![
                OrderEvent::from(domain::OrderPlaced {
                    customer_id: "cy".into(),
                    items: Vec::new(),
                    shipping_address: "1 Main St".into(),
                    total_cents: 0,
                }),
                OrderShipped {
                    carrier: "ups".into(),
                    tracking_number: "UPS-3".into(),
                }
                .into(),
            ])
        })
        .await
        .unwrap();

    // A message its handler fails at every delivery (dead-lettered), and a broker that
    // refuses the publish (the command is saved; the outcome carries the error).
    let placed = |_: &Order| {
        Ok::<_, Infallible>(vec![OrderEvent::from(domain::OrderPlaced {
            customer_id: "cz".into(),
            items: Vec::new(),
            shipping_address: "1 Main St".into(),
            total_cents: 0,
        })])
    };
    let doomed = InMemoryEventBus::new()
        .with_destination("orders-doomed")
        .with_max_deliveries(2);
    doomed.subscribe_fn("doomed", |_event| async {
        Err::<(), _>(HandlerError::new("always down"))
    });
    let outcome = CommandService::<Order>::new(store.clone())
        .with_bus(doomed.clone())
        .execute_with("o-8", placed)
        .await
        .unwrap();
    assert!(outcome.publish_error().is_none());
    assert_eq!(doomed.dead_letters().len(), 1);
    let outcome = CommandService::<Order>::new(store.clone())
        .with_bus(Refusing(BusTelemetry::new("refusing-broker")))
        .execute_with("o-9", placed)
        .await
        .unwrap();
    assert!(outcome.publish_error().is_some());

    // A message with no trace context (counted, a new root).
    let no_context = Dispatcher::new("no-context", BusTelemetry::new("in_memory"));
    no_context.subscribe(handler_fn("audit", |_event| async {
        Ok::<(), HandlerError>(())
    }));
    assert!(
        no_context
            .deliver(&BusMessage::new("no-context", stored[0].clone()))
            .await
            .is_empty()
    );

    // A projection runner handing batches over.
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        EventCounter::default(),
    );
    let handled = runner.run_until_caught_up().await.unwrap();
    assert!(handled > 0);
    // Its health, asked (as a readiness probe would): the mark-held gauge, 0 here.
    assert!(runner.health().await.mark_holder.is_none());

    // Projections split into two segments, on one worker (one event a call, and batches).
    split_in_two(&store, OneAtATime::default(), handled, |p| p.0).await;
    split_in_two(&store, EventCounter::default(), handled, |p| p.0).await;

    // Queries.
    let one = eventsource_runtime::query::run("OrderById", async { Ok::<_, Infallible>(1) });
    assert_eq!(one.await.unwrap(), 1);
    let many = eventsource_runtime::query::run_collection("OrdersByCustomer", async {
        Ok::<_, Infallible>(vec![1, 2])
    });
    assert_eq!(many.await.unwrap().len(), 2);

    // #[traced].
    assert_eq!(lookup("o-1").await, 300);

    park_an_unreadable_event().await;
    upcasting::run().await;
}

/// A SQLite store (in memory) holding an unreadable row, parked by a runner.
async fn park_an_unreadable_event() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, timestamp, payload, metadata) VALUES \
         ('Order', 'legacy', 1, '0190a000-0000-7000-8000-000000000002', 'Imported', -1, \
          '2025-01-31T12:00:01.000000000Z', '{}', '{}')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(store.checkpoint_store()),
        TracedReadModel::default(),
    )
    .on_unreadable(UnreadablePolicy::Park);
    assert_eq!(runner.run_until_caught_up().await.unwrap(), 1);
    assert_eq!(runner.parked().await.unwrap().len(), 1);
}
