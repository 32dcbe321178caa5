//! The projection spans: off by default, switched on per projection or per instance, named,
//! linked to the span that appended the event.

use super::*;

#[tokio::test]
async fn projections_are_not_traced_by_default() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let journal = orders.register(Journal::default());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert_eq!(journal.lock().await.calls, ["placed by ada"]);
    let spans = capture.spans();
    assert!(
        spans.all("projection.Journal").is_empty(),
        "{}",
        spans.tree()
    );
    assert!(
        !spans.names().iter().any(|n| n.starts_with("projection")),
        "{}",
        spans.tree()
    );
    assert!(!spans.all("command.PlaceOrder").is_empty());
}

#[tokio::test]
async fn a_traced_projection_is_a_linked_consumer_root_per_handled_event() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let traced = orders.register(TracedOrders::default());
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert_eq!(traced.lock().await.placed, 1);

    let spans = capture.spans();
    let projection = spans.get("projection.TracedOrders");
    assert_eq!(kind(projection), SpanKind::Consumer);
    spans.assert_linked_root("projection.TracedOrders", "eventsource.event_store.append");
    let command = spans.get("command.PlaceOrder");
    assert_ne!(
        projection.span_context.trace_id(),
        command.span_context.trace_id(),
        "a new trace, linked and not parented"
    );
    assert_eq!(projection.status, Status::Unset);
    assert_eq!(
        attribute(projection, attr::PROJECTION_NAME),
        Some(&string("TracedOrders"))
    );
    assert_eq!(
        attribute(projection, attr::CQRS_SIDE),
        Some(&string(attr::SIDE_PROJECTION))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_TYPE),
        Some(&string("OrderPlaced"))
    );
    assert_eq!(
        attribute(projection, attr::AGGREGATE_ID),
        Some(&string("o-1"))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_SEQUENCE),
        Some(&int(i64::try_from(outcome.events[0].version).unwrap()))
    );
    assert!(
        matches!(attribute(projection, attr::PROJECTION_LAG_MS), Some(Value::I64(lag)) if *lag >= 0),
        "{:?}",
        attribute(projection, attr::PROJECTION_LAG_MS)
    );
    assert!(events(projection, attr::SPAN_EVENT_EXCEPTION).is_empty());

    // A shipment is not handled: no delivery, no span.
    capture.clear();
    orders.execute(ship("o-1")).await.unwrap();
    let spans = capture.spans();
    assert!(!spans.all("command.ShipOrder").is_empty());
    assert!(
        spans.all("projection.TracedOrders").is_empty(),
        "{}",
        spans.tree()
    );

    // One span per handled event.
    capture.clear();
    let events = stored("o-2", &[placed("bob", 1), shipped(), placed("eve", 2)]).await;
    let registry = ProjectionRegistry::new();
    registry.register(TracedOrders::default());
    assert!(registry.deliver(&events).await.is_empty());
    let spans = capture.spans();
    let projected = spans.all("projection.TracedOrders");
    assert_eq!(projected.len(), 2, "{}", spans.tree());
    assert_eq!(attribute(projected[1], attr::EVENT_SEQUENCE), Some(&int(3)));
}

#[tokio::test]
async fn the_span_and_projection_names_can_be_chosen() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders.register(Renamed);
    orders.register(Named);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let spans = capture.spans();

    let renamed = spans.get("projection.update");
    assert_eq!(
        attribute(renamed, attr::PROJECTION_NAME),
        Some(&string("OrderUpdates"))
    );
    spans.assert_linked_root("projection.update", "eventsource.event_store.append");
    assert_eq!(Projection::name(&Renamed), "OrderUpdates");
    assert_eq!(Renamed.span_name(), Some("projection.update"));

    let named = spans.get("projection.OrderList");
    assert_eq!(
        attribute(named, attr::PROJECTION_NAME),
        Some(&string("OrderList"))
    );
    assert!(spans.all("projection.Renamed").is_empty());
    assert!(spans.all("projection.Named").is_empty());
}

#[tokio::test]
async fn the_switch_can_read_the_instance() {
    assert!(!Switchable::default().tracing_enabled());
    assert!(Switchable { trace: true }.tracing_enabled());

    let capture = capture();
    let events = stored("o-1", &[placed("ada", 1)]).await;
    let silent = ProjectionRegistry::new();
    silent.register(Switchable { trace: false });
    assert!(silent.deliver(&events).await.is_empty());
    assert!(capture.spans().all("projection.Switchable").is_empty());

    let traced = ProjectionRegistry::new();
    traced.register(Switchable { trace: true });
    assert!(traced.deliver(&events).await.is_empty());
    assert_eq!(capture.spans().all("projection.Switchable").len(), 1);
}

#[tokio::test]
async fn a_failing_handler_ends_its_span_with_an_error_and_one_exception() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders.register(TracedOrders::default());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    capture.clear();
    let outcome = orders
        .execute(CancelOrder {
            order_id: "o-1".into(),
            reason: "refuse".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.delivery_failures.len(), 1);

    let spans = capture.spans();
    let projection = spans.get("projection.TracedOrders");
    assert!(
        matches!(&projection.status, Status::Error { description } if description.contains("refused to cancel o-1")),
        "{:?}",
        projection.status
    );
    let exceptions = events(projection, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1, "exactly one exception event");
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE
                && kv.value.as_str().contains("refused to cancel o-1"))
    );
    // The command itself succeeded: the events are stored.
    assert_eq!(spans.get("command.CancelOrder").status, Status::Unset);
}
