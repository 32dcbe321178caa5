//! Where a trace starts anew: a replay from the store and a batch delivery (new roots, linked),
//! and a message with a missing or malformed context (a new root, counted).

use super::*;

#[tokio::test]
async fn a_replay_from_the_store_is_a_new_root_linked_to_the_append() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.execute(place("o-1")).await.unwrap();
    let append = capture
        .spans()
        .get("eventsource.event_store.append")
        .clone();

    // Later (a restart): a new bus replays what the store holds.
    capture.clear();
    let bus = InMemoryEventBus::new().with_destination("orders-replay");
    let audit = Recorder::default();
    audit.subscribe(&bus, "audit");
    let stored = store.read_all(1, usize::MAX).await.unwrap();
    let failures = bus.replay(&stored).await;
    assert!(failures.is_empty());
    assert_eq!(audit.types(), ["OrderPlaced"]);

    let spans = capture.spans();
    let consume = spans.get(CONSUME);
    assert!(spans.is_root(consume), "{}", spans.tree());
    assert_eq!(kind(consume), SpanKind::Consumer);
    assert!(has_link_to(consume, &append), "{:?}", consume.links);
    assert_eq!(consume.links.links.len(), 1);
    assert_eq!(
        consume.links.links[0].attributes,
        [opentelemetry::KeyValue::new(
            attr::MESSAGING_MESSAGE_ID,
            stored[0].event_id.to_string()
        )]
    );
    assert_eq!(
        attribute(consume, attr::DELIVERY_MODE),
        Some(&string("replay"))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_DESTINATION_NAME),
        Some(&string("orders-replay"))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("process"))
    );
    spans.assert_child_of(HANDLE, CONSUME);
    assert!(spans.all(PUBLISH).is_empty(), "a replay publishes nothing");
}

#[tokio::test]
async fn a_batch_delivery_is_one_root_linked_to_each_message() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new().with_batch_delivery(true);
    let seen = Recorder::default();
    seen.subscribe(&bus, "audit");
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders
        .execute_with("o-1", |_| {
            Ok::<_, Infallible>(vec![
                OrderEvent::from(OrderPlaced {
                    customer_id: "ada".into(),
                    items: Vec::new(),
                    shipping_address: "1 Main St".into(),
                    total_cents: 0,
                }),
                OrderShipped {
                    carrier: "dhl".into(),
                    tracking_number: "DHL-1".into(),
                }
                .into(),
            ])
        })
        .await
        .unwrap();
    assert_eq!(seen.types(), ["OrderPlaced", "OrderShipped"]);

    let spans = capture.spans();
    let publishes = spans.all(PUBLISH);
    assert_eq!(publishes.len(), 2, "{}", spans.tree());
    let consume = spans.get(CONSUME);
    assert!(spans.is_root(consume), "{}", spans.tree());
    assert_eq!(consume.links.links.len(), 2);
    for publish in &publishes {
        assert!(has_link_to(consume, publish));
    }
    assert_eq!(
        attribute(consume, attr::MESSAGING_BATCH_MESSAGE_COUNT),
        Some(&int(2))
    );
    assert_eq!(
        attribute(consume, attr::DELIVERY_MODE),
        Some(&string("batch"))
    );
    assert_eq!(attribute(consume, attr::MESSAGING_MESSAGE_ID), None);
    let handles = spans.children(consume);
    assert_eq!(handles.len(), 2);
    assert!(handles.iter().all(|h| h.name == HANDLE));
}

// ---- missing or malformed context ----------------------------------------------------------

#[tokio::test]
async fn missing_or_malformed_context_starts_a_new_root_and_is_counted() {
    let _global = GLOBAL.write().await;
    let capture = capture();
    let store = InMemoryEventStore::new();
    CommandService::<Order>::new(store.clone())
        .execute(place("o-1"))
        .await
        .unwrap();
    let event = store.read_all(1, 1).await.unwrap().into_events().remove(0);
    capture.clear();

    let dispatcher = Dispatcher::new("orders", BusTelemetry::new("nats"));
    let calls = Arc::new(AtomicUsize::new(0));
    dispatcher.subscribe(failing("counter", 0, &calls));

    let (missing, malformed) = (
        propagation::missing_context_count(),
        propagation::malformed_context_count(),
    );
    let no_headers = BusMessage::new("orders", event.clone());
    assert!(dispatcher.deliver(&no_headers).await.is_empty());
    assert_eq!(propagation::missing_context_count(), missing + 1);

    for garbage in [
        "garbage",
        "00-00000000000000000000000000000000-0000000000000000-01",
        "",
    ] {
        let bad = BusMessage::new("orders", event.clone())
            .with_headers(Metadata::new().with(Metadata::TRACEPARENT, garbage));
        assert!(dispatcher.deliver(&bad).await.is_empty());
    }
    assert_eq!(propagation::malformed_context_count(), malformed + 3);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the handler ran every time"
    );

    let spans = capture.spans();
    let consumes = spans.all(CONSUME);
    assert_eq!(consumes.len(), 4, "{}", spans.tree());
    for consume in consumes {
        assert!(spans.is_root(consume));
        assert!(consume.links.links.is_empty());
        assert_eq!(consume.status, Status::Unset);
        assert_eq!(
            attribute(consume, attr::MESSAGING_SYSTEM),
            Some(&string("nats"))
        );
    }
}
