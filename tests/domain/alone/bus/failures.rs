//! Failures: redeliveries, dead letters, a panicking handler, a failed publish.

use super::*;

#[tokio::test]
async fn a_failing_handler_is_redelivered_alone_then_dead_lettered() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new().with_max_deliveries(3);
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("send-confirmation", usize::MAX, &calls));
    let steady = Recorder::default();
    steady.subscribe(&bus, "reserve-stock");
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone()).with_bus(bus.clone());

    let outcome = orders.execute(place("o-1")).await.unwrap();
    let spans = capture.spans();
    let event = &outcome.events[0];
    assert_eq!(store.len(), 1, "the save stands");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "three deliveries in all");
    assert_eq!(
        steady.types(),
        ["OrderPlaced"],
        "only the failed handler again"
    );

    // The live consume: child of publish, ERROR (no exception event of its own).
    let publish = spans.get(PUBLISH);
    let consumes = spans.all(CONSUME);
    assert_eq!(consumes.len(), 3, "{}", spans.tree());
    let live = consumes
        .iter()
        .find(|c| c.parent_span_id == publish.span_context.span_id())
        .expect("the live consume is a child of publish");
    assert!(
        matches!(&live.status, Status::Error { description } if description.contains("smtp server down"))
    );
    assert!(events(live, attr::SPAN_EVENT_EXCEPTION).is_empty());

    // Every failed handle span: ERROR with exactly one exception event.
    assert_eq!(spans.all(HANDLE).len(), 4, "3 failed + 1 steady");
    let failed_handles: Vec<&SpanData> = spans
        .all(HANDLE)
        .into_iter()
        .filter(|h| attribute(h, attr::HANDLER_NAME) == Some(&string("send-confirmation")))
        .collect();
    assert_eq!(failed_handles.len(), 3);
    for handle in &failed_handles {
        assert_eq!(handle.status, Status::error("smtp server down"));
        let exceptions = events(handle, attr::SPAN_EVENT_EXCEPTION);
        assert_eq!(exceptions.len(), 1, "{:?}", handle.events);
        assert!(exceptions[0].iter().any(
            |kv| kv.key.as_str() == attr::EXCEPTION_TYPE && kv.value == string("HandlerError")
        ));
        assert!(
            exceptions[0]
                .iter()
                .any(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE
                    && kv.value == string("smtp server down"))
        );
    }

    // Redeliveries: new roots, linked to the publish span, attempts 2 and 3.
    let mut attempts = Vec::new();
    for redelivery in consumes
        .iter()
        .filter(|c| c.parent_span_id != publish.span_context.span_id())
    {
        assert!(spans.is_root(redelivery), "{}", spans.tree());
        assert_ne!(
            redelivery.span_context.trace_id(),
            publish.span_context.trace_id()
        );
        assert!(has_link_to(redelivery, publish), "{:?}", redelivery.links);
        assert_eq!(redelivery.links.links.len(), 1);
        assert_eq!(
            attribute(redelivery, attr::DELIVERY_MODE),
            Some(&string("redelivery"))
        );
        match attribute(redelivery, attr::DELIVERY_ATTEMPT) {
            Some(Value::I64(n)) => attempts.push(*n),
            other => panic!("attempt: {other:?}"),
        }
        assert_eq!(
            spans.children(redelivery).len(),
            1,
            "only the failed handler"
        );
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [2, 3]);

    // The dead letter: the message as published, headers with the publish span's context.
    let dead = bus.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].handler, "send-confirmation");
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].error, "smtp server down");
    assert_eq!(dead[0].message.message_id, event.event_id);
    assert_eq!(dead[0].message.event, *event);
    assert_eq!(
        traceparent_span(&dead[0].message.headers),
        publish.span_context.span_id(),
        "the headers carry the publish span's own context"
    );
    assert_eq!(
        traceparent_span(&dead[0].message.event.metadata),
        spans
            .get("eventsource.event_store.append")
            .span_context
            .span_id(),
        "the event keeps the append span's"
    );
    let report = outcome.publish.unwrap().unwrap();
    assert_eq!(report.dead_letters, dead);
    // The command itself succeeded.
    assert_eq!(spans.get("command.PlaceOrder").status, Status::Unset);
}

#[tokio::test]
async fn a_handler_that_recovers_is_not_dead_lettered() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("flaky", 1, &calls));
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    let outcome = orders.execute(place("o-1")).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(bus.dead_letters().is_empty());
    assert!(outcome.publish.unwrap().unwrap().dead_letters.is_empty());
    let spans = capture.spans();
    assert_eq!(spans.all(CONSUME).len(), 2, "{}", spans.tree());
    let handles = spans.all(HANDLE);
    assert_eq!(
        handles.iter().filter(|h| h.status == Status::Unset).count(),
        1
    );
}

#[tokio::test]
async fn a_panicking_handler_fails_its_delivery_without_unwinding_through_the_command() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new().with_max_deliveries(1);
    bus.subscribe_fn("explodes", |_event| async {
        if true {
            panic!("boom");
        }
        Ok::<(), HandlerError>(())
    });
    let after = Recorder::default();
    after.subscribe(&bus, "after");
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());

    let outcome = orders.execute(place("o-1")).await.unwrap();
    assert_eq!(after.types(), ["OrderPlaced"], "the next handler still ran");
    let dead = &outcome.publish.unwrap().unwrap().dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error, "handler panicked: boom");

    let spans = capture.spans();
    let exploded = spans
        .all(HANDLE)
        .into_iter()
        .find(|h| attribute(h, attr::HANDLER_NAME) == Some(&string("explodes")))
        .unwrap();
    assert_eq!(exploded.status, Status::error("boom"));
    let exceptions = events(exploded, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1);
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EXCEPTION_TYPE && kv.value == string("panic"))
    );
}

/// A broker that is down, publishing through the shared producer telemetry.
struct DownBroker;

#[eventsource_runtime::async_trait]
impl EventBus for DownBroker {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let telemetry = BusTelemetry::new("rabbitmq");
        for event in events {
            let message = BusMessage::new("orders", event.clone());
            instrument::publish(&telemetry, message, |_| async {
                Err::<(), _>(BusError::unavailable("connection refused"))
            })
            .await?;
        }
        Ok(PublishReport::default())
    }
}

#[tokio::test]
async fn a_failed_publish_is_reported_and_never_undoes_the_save() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone()).with_bus(DownBroker);

    let outcome = orders.execute(place("o-1")).await.unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(outcome.version(), 1);
    assert!(matches!(
        outcome.publish_error(),
        Some(BusError::Unavailable(e)) if e.to_string() == "connection refused"
    ));

    let spans = capture.spans();
    spans.assert_child_of(PUBLISH, "command.PlaceOrder");
    let publish = spans.get(PUBLISH);
    assert_eq!(
        attribute(publish, attr::MESSAGING_SYSTEM),
        Some(&string("rabbitmq"))
    );
    assert_eq!(
        publish.status,
        Status::error("event bus unavailable: connection refused")
    );
    let exceptions = events(publish, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1);
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EXCEPTION_TYPE
                && kv.value == string("BusError::Unavailable"))
    );
    assert_eq!(spans.get("command.PlaceOrder").status, Status::Unset);
    assert!(spans.all(CONSUME).is_empty());
}
