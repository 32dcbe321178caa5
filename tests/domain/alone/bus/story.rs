//! The story: a command publishes, the bus consumes, each interested handler handles, in one trace.

use super::*;

#[tokio::test]
async fn a_command_publishes_and_the_handler_consumes_in_the_same_trace() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new().with_destination("orders");
    let confirmations = Recorder::default();
    confirmations.subscribe(&bus, "send-confirmation");
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());

    let outcome = orders.execute(place("o-1")).await.unwrap();
    let spans = capture.spans();
    let event = &outcome.events[0];

    // Every handler has seen the event when the command returns.
    assert_eq!(confirmations.types(), ["OrderPlaced"]);
    let report = outcome.publish.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.message_ids, [event.event_id]);
    assert!(report.dead_letters.is_empty());

    // publish: PRODUCER, child of the command span, the contract's attributes.
    spans.assert_child_of(PUBLISH, "command.PlaceOrder");
    let command = spans.get("command.PlaceOrder");
    let publish = spans.get(PUBLISH);
    assert_eq!(kind(publish), SpanKind::Producer);
    assert_eq!(publish.status, Status::Unset);
    assert_eq!(
        attribute(publish, attr::MESSAGING_SYSTEM),
        Some(&string("in_memory"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_DESTINATION_NAME),
        Some(&string("orders"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("send"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_OPERATION_NAME),
        Some(&string("send"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_MESSAGE_ID),
        Some(&string(&event.event_id.to_string()))
    );
    assert_eq!(
        attribute(publish, attr::EVENT_TYPE),
        Some(&string("OrderPlaced"))
    );
    assert_eq!(attribute(publish, attr::AGGREGATE_ID), Some(&string("o-1")));

    // consume: CONSUMER, child of the publish span's context (same trace, parent = publish).
    let consume = spans.get(CONSUME);
    assert_eq!(kind(consume), SpanKind::Consumer);
    assert_eq!(
        consume.span_context.trace_id(),
        publish.span_context.trace_id()
    );
    assert_eq!(consume.parent_span_id, publish.span_context.span_id());
    assert!(consume.links.links.is_empty());
    assert_eq!(consume.status, Status::Unset);
    for (key, value) in [
        (attr::MESSAGING_SYSTEM, "in_memory"),
        (attr::MESSAGING_DESTINATION_NAME, "orders"),
        (attr::MESSAGING_OPERATION_TYPE, "process"),
        (attr::MESSAGING_OPERATION_NAME, "process"),
        (attr::EVENT_TYPE, "OrderPlaced"),
        (attr::DELIVERY_MODE, "live"),
    ] {
        assert_eq!(attribute(consume, key), Some(&string(value)), "{key}");
    }
    assert_eq!(
        attribute(consume, attr::MESSAGING_MESSAGE_ID),
        Some(&string(&event.event_id.to_string()))
    );
    assert_eq!(attribute(consume, attr::DELIVERY_ATTEMPT), None);

    // handle: INTERNAL, child of consume, the handler's name.
    spans.assert_child_of(HANDLE, CONSUME);
    let handle = spans.get(HANDLE);
    assert_eq!(kind(handle), SpanKind::Internal);
    assert_eq!(handle.status, Status::Unset);
    assert_eq!(
        attribute(handle, attr::HANDLER_NAME),
        Some(&string("send-confirmation"))
    );
    assert_eq!(
        attribute(handle, attr::EVENT_TYPE),
        Some(&string("OrderPlaced"))
    );

    // The stored event keeps the append span's context; the message carried the publish's.
    let append = spans.get("eventsource.event_store.append");
    assert_eq!(
        traceparent_span(&event.metadata),
        append.span_context.span_id()
    );
    assert_ne!(
        publish.span_context.span_id(),
        append.span_context.span_id()
    );
    // One trace: command -> {load, save -> append, publish -> consume -> handle}.
    assert!(spans.is_root(command), "{}", spans.tree());
    for span in &spans.0 {
        assert_eq!(
            span.span_context.trace_id(),
            command.span_context.trace_id(),
            "`{}` outside the command's trace:\n{}",
            span.name,
            spans.tree()
        );
    }
}

#[tokio::test]
async fn fan_out_gives_one_handle_span_per_interested_handler() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new();
    let (mail, stock) = (Recorder::default(), Recorder::default());
    mail.subscribe(&bus, "send-confirmation");
    stock.subscribe(&bus, "reserve-stock");
    let shipped_only = Recorder::default();
    {
        let seen = Arc::clone(&shipped_only.seen);
        bus.subscribe(
            handler_fn("notify-carrier", move |event| {
                seen.lock().unwrap().push(event);
                async { Ok::<(), HandlerError>(()) }
            })
            .only(["OrderShipped"]),
        );
    }
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(place("o-1")).await.unwrap();

    let spans = capture.spans();
    let consume = spans.get(CONSUME);
    let handles = spans.all(HANDLE);
    assert_eq!(handles.len(), 2, "{}", spans.tree());
    let mut names: Vec<String> = handles
        .iter()
        .map(|h| {
            assert_eq!(h.parent_span_id, consume.span_context.span_id());
            attribute(h, attr::HANDLER_NAME)
                .unwrap()
                .as_str()
                .into_owned()
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["reserve-stock", "send-confirmation"]);
    assert_eq!(mail.types(), ["OrderPlaced"]);
    assert_eq!(stock.types(), ["OrderPlaced"]);
    assert!(shipped_only.types().is_empty(), "not a type it handles");
}

#[tokio::test]
async fn a_message_no_handler_wants_is_published_but_not_consumed() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new();
    let carrier = Recorder::default();
    {
        let seen = Arc::clone(&carrier.seen);
        bus.subscribe(
            handler_fn("notify-carrier", move |event| {
                seen.lock().unwrap().push(event);
                async { Ok::<(), HandlerError>(()) }
            })
            .only(["OrderShipped"]),
        );
    }
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(place("o-1")).await.unwrap();
    let spans = capture.spans();
    assert_eq!(spans.all(PUBLISH).len(), 1);
    assert!(spans.all(CONSUME).is_empty(), "{}", spans.tree());
    assert!(carrier.types().is_empty());
}
