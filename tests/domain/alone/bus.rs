//! The event bus, read back from the in-memory exporters: a command's publish (PRODUCER,
//! child of the command span, its own context in the message headers), the live consume
//! (CONSUMER, child of the publish span), the handle spans (INTERNAL, one per handler),
//! failures, redeliveries and dead letters, replays and batches (new roots, linked),
//! missing or malformed context, the switches, and the bus metrics.
//!
//! Every test installs a span capture before its first span: `tracing` caches a callsite's
//! interest when it is first hit, and a callsite first hit on a thread without a capture,
//! while another test has one, could be cached as unwanted, losing that test's spans. The
//! process switch and the trace-context counters are global: the test flipping the switch
//! or counting takes `GLOBAL` for writing, every other test for reading.

#[path = "../../../examples/domain/order.rs"]
mod domain;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use domain::{Order, OrderEvent, OrderPlaced, OrderShipped, sample_order};
use eventsource_runtime::bus::BusTelemetry;
use eventsource_runtime::bus::{
    BusError, BusMessage, Dispatcher, EventBus, HandlerError, InMemoryEventBus, PublishReport,
    handler_fn, instrument,
};
use eventsource_runtime::event::Metadata;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::{self, propagation, toggles};
use eventsource_runtime::testing::{
    MetricCapture, attribute, capture, capture_metrics, events, kind,
};
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::RwLock;
use tracing::Instrument as _;

static GLOBAL: RwLock<()> = RwLock::const_new(());
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

const PUBLISH: &str = attr::SPAN_BUS_PUBLISH;
const CONSUME: &str = attr::SPAN_BUS_CONSUME;
const HANDLE: &str = attr::SPAN_BUS_HANDLE;

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn int(v: i64) -> Value {
    Value::I64(v)
}

/// A handler recording the events it received.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl Recorder {
    fn subscribe(&self, bus: &InMemoryEventBus, name: &'static str) {
        let seen = Arc::clone(&self.seen);
        bus.subscribe_fn(name, move |event| {
            seen.lock().unwrap().push(event);
            async { Ok::<(), HandlerError>(()) }
        });
    }

    fn types(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.event_type.to_string())
            .collect()
    }
}

/// A handler that fails its first `failures` calls (all, with `usize::MAX`).
fn failing(name: &'static str, failures: usize, calls: &Arc<AtomicUsize>) -> impl EventHandler {
    let calls = Arc::clone(calls);
    handler_fn(name, move |_event| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(HandlerError::new("smtp server down"))
            } else {
                Ok(())
            }
        }
    })
}

fn span_id_of(context: &opentelemetry::trace::SpanContext) -> SpanId {
    context.span_id()
}

/// The span context stored in `metadata`'s `traceparent`.
fn traceparent_span(metadata: &Metadata) -> SpanId {
    span_id_of(&propagation::stored_span_context(metadata).expect("a valid traceparent"))
}

fn has_link_to(span: &SpanData, target: &SpanData) -> bool {
    span.links.links.iter().any(|l| {
        l.span_context.span_id() == target.span_context.span_id()
            && l.span_context.trace_id() == target.span_context.trace_id()
    })
}

fn place(order_id: &str) -> domain::PlaceOrder {
    sample_order(order_id, "ada")
}

// ---- the story: command -> publish -> consume -> handle ------------------------------------

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

// ---- failures, redeliveries, dead letters --------------------------------------------------

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

// ---- replay and batches: new roots, linked -------------------------------------------------

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

// ---- switches ------------------------------------------------------------------------------

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

// ---- the producer side for transports ------------------------------------------------------

#[tokio::test]
async fn instrument_publish_puts_the_publish_span_context_in_the_headers() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let store = InMemoryEventStore::new();
    CommandService::<Order>::new(store.clone())
        .execute(place("o-1"))
        .await
        .unwrap();
    let event = store.read_all(1, 1).await.unwrap().into_events().remove(0);
    capture.clear();

    let sent = async {
        instrument::publish(
            &BusTelemetry::new("rabbitmq"),
            BusMessage::new("orders", event.clone()),
            |message| async move { Ok::<_, BusError>(message) },
        )
        .await
        .unwrap()
    }
    .instrument(tracing::info_span!("outbox relay"))
    .await;

    let spans = capture.spans();
    spans.assert_child_of(PUBLISH, "outbox relay");
    let publish = spans.get(PUBLISH);
    assert_eq!(
        traceparent_span(&sent.headers),
        publish.span_context.span_id()
    );
    assert_ne!(
        traceparent_span(&sent.headers),
        traceparent_span(&sent.event.metadata)
    );
    assert_eq!(sent.event, event, "the stored event is untouched");
}

// ---- metrics -------------------------------------------------------------------------------

#[tokio::test]
async fn the_bus_metrics_have_the_contract_names_units_and_attributes() {
    let _global = GLOBAL.read().await;
    let metrics = &*METRICS;
    let _capture = capture();
    let bus = InMemoryEventBus::new()
        .with_destination("metrics-orders")
        .with_max_deliveries(2);
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("metrics-flaky", usize::MAX, &calls));
    let seen = Recorder::default();
    seen.subscribe(&bus, "metrics-audit");
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(place("o-1")).await.unwrap();

    let here = [(attr::MESSAGING_DESTINATION_NAME, "metrics-orders")];
    assert_eq!(metrics.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &here), 1);
    assert_eq!(
        metrics.total(
            attr::METRIC_BUS_MESSAGES_PUBLISHED,
            &[
                (attr::MESSAGING_DESTINATION_NAME, "metrics-orders"),
                (attr::MESSAGING_SYSTEM, "in_memory"),
                (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
            ]
        ),
        1
    );
    // The live delivery and one redelivery.
    assert_eq!(metrics.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &here), 2);
    let flaky = [(attr::METRIC_ATTR_HANDLER_NAME, "metrics-flaky")];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &flaky), 2);
    let audit = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-audit"),
        (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
    ];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &audit), 1);

    for (name, unit) in [
        (attr::METRIC_BUS_MESSAGES_PUBLISHED, "{message}"),
        (attr::METRIC_BUS_MESSAGES_CONSUMED, "{message}"),
        (attr::METRIC_BUS_HANDLER_DURATION, "s"),
    ] {
        assert_eq!(metrics.unit(name).as_deref(), Some(unit), "{name}");
    }
    // Exactly the contract's attributes, none unbounded (no message or aggregate id).
    for name in [
        attr::METRIC_BUS_MESSAGES_PUBLISHED,
        attr::METRIC_BUS_MESSAGES_CONSUMED,
    ] {
        assert_eq!(
            metrics.attribute_keys(name),
            [
                attr::METRIC_ATTR_EVENT_TYPE,
                attr::MESSAGING_DESTINATION_NAME,
                attr::MESSAGING_SYSTEM
            ],
            "{name}"
        );
    }
    assert_eq!(
        metrics.attribute_keys(attr::METRIC_BUS_HANDLER_DURATION),
        [
            attr::METRIC_ATTR_EVENT_TYPE,
            attr::METRIC_ATTR_HANDLER_NAME,
            attr::METRIC_ATTR_HANDLER_STATUS
        ]
    );
    // The flaky handler failed both deliveries: two errors, then the dead letters.
    let failed = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-flaky"),
        (attr::METRIC_ATTR_HANDLER_STATUS, "error"),
    ];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &failed), 2);
    let audited = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-audit"),
        (attr::METRIC_ATTR_HANDLER_STATUS, "success"),
    ];
    assert_eq!(
        metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &audited),
        1
    );
    let dead = [
        (attr::MESSAGING_DESTINATION_NAME, "metrics-orders"),
        (attr::MESSAGING_SYSTEM, "in_memory"),
        (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
    ];
    assert_eq!(
        metrics.total(attr::METRIC_BUS_MESSAGES_DEAD_LETTERED, &dead),
        1
    );
}
