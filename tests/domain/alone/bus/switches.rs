//! The switches: a bus with tracing off and the process switch off build no span but deliver.

use super::*;

#[tokio::test]
async fn a_bus_with_tracing_off_builds_no_span_but_delivers() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let bus = InMemoryEventBus::new()
        .enable_tracing(false)
        .with_max_deliveries(1);
    let seen = Recorder::default();
    seen.subscribe(&bus, "audit");
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("broken", usize::MAX, &calls));
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(place("o-1")).await.unwrap();

    assert_eq!(seen.types(), ["OrderPlaced"]);
    let spans = capture.spans();
    assert!(!spans.all("command.PlaceOrder").is_empty());
    for name in [PUBLISH, CONSUME, HANDLE] {
        assert!(spans.all(name).is_empty(), "{name}:\n{}", spans.tree());
    }
    // The headers still carry the caller's (the command's) context.
    let dead = bus.dead_letters();
    assert_eq!(
        traceparent_span(&dead[0].message.headers),
        spans.get("command.PlaceOrder").span_context.span_id()
    );
}

#[tokio::test]
async fn the_process_switch_off_builds_no_bus_span_but_delivers() {
    let _global = GLOBAL.write().await;
    let capture = capture();
    let bus = InMemoryEventBus::new().with_max_deliveries(1);
    let seen = Recorder::default();
    seen.subscribe(&bus, "audit");
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("broken", usize::MAX, &calls));
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());

    telemetry::set_enabled(false);
    let outcome = orders.execute(place("o-1")).await;
    let replayed = bus.replay(&outcome.as_ref().unwrap().events).await;
    toggles::reset();

    outcome.unwrap();
    assert_eq!(replayed.len(), 1, "the broken handler failed the replay");
    assert_eq!(seen.types(), ["OrderPlaced", "OrderPlaced"]);
    let spans = capture.spans();
    assert!(spans.is_empty(), "{}", spans.tree());
    assert!(
        bus.dead_letters()[0].message.headers.is_empty(),
        "nothing injected"
    );
}
