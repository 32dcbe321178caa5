//! The runtime components' spans, read back from an in-memory OpenTelemetry exporter:
//! names, parent/child, kinds, links, status, attributes and span events, as the telemetry
//! contract specifies them.

use eventsource_test_support::domain;

use domain::{Order, OrderReadModel, ShipOrder, sample_order};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::propagation;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Value};

/// `OrderReadModel` with its spans switched on, as `#[projection(enable_tracing = true)]` does.
#[derive(Default)]
struct TracedReadModel(OrderReadModel);

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

fn int(v: i64) -> Value {
    Value::I64(v)
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

#[tokio::test]
async fn a_command_is_one_trace_of_load_decide_save_deliver() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.register(TracedReadModel::default());

    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let spans = capture.spans();

    // The tree of the command.
    let command = spans.get("command.PlaceOrder");
    assert!(spans.is_root(command), "{}", spans.tree());
    assert_eq!(kind(command), SpanKind::Internal);
    assert_eq!(command.status, Status::Unset);
    spans.assert_child_of("eventsource.repository.load", "command.PlaceOrder");
    spans.assert_child_of(
        "eventsource.event_store.load",
        "eventsource.repository.load",
    );
    spans.assert_child_of("eventsource.repository.save", "command.PlaceOrder");
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );

    // The command span's attributes and events.
    assert_eq!(
        attribute(command, attr::COMMAND_TYPE),
        Some(&string("PlaceOrder"))
    );
    assert_eq!(
        attribute(command, attr::AGGREGATE_TYPE),
        Some(&string("Order"))
    );
    assert_eq!(attribute(command, attr::AGGREGATE_ID), Some(&string("o-1")));
    assert_eq!(attribute(command, attr::CQRS_SIDE), Some(&string("write")));
    assert_eq!(attribute(command, attr::EVENT_COUNT), Some(&int(1)));
    assert_eq!(
        attribute(command, attr::EVENT_TYPES),
        Some(&Value::Array(Array::String(vec!["OrderPlaced".into()])))
    );
    let produced = events(command, attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED);
    assert_eq!(produced.len(), 1);
    assert_eq!(produced[0][0].value, string("OrderPlaced"));

    // The repository spans.
    let load = spans.get("eventsource.repository.load");
    assert_eq!(kind(load), SpanKind::Internal);
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&int(0)));
    assert_eq!(attribute(load, attr::VERSION), Some(&int(0)));
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(false))
    );
    let save = spans.get("eventsource.repository.save");
    assert_eq!(attribute(save, attr::EXPECTED_VERSION), Some(&int(0)));
    assert_eq!(attribute(save, attr::EVENT_COUNT), Some(&int(1)));
    assert_eq!(attribute(save, attr::VERSION), Some(&int(1)));

    // The store spans: CLIENT, db attributes, integers, one event_persisted per event.
    let store_load = spans.get("eventsource.event_store.load");
    assert_eq!(kind(store_load), SpanKind::Client);
    assert_eq!(
        attribute(store_load, attr::DB_SYSTEM_NAME),
        Some(&string("in_memory"))
    );
    assert_eq!(
        attribute(store_load, attr::DB_OPERATION_NAME),
        Some(&string("load"))
    );
    assert_eq!(attribute(store_load, attr::FROM_VERSION), Some(&int(1)));
    assert_eq!(attribute(store_load, attr::EVENTS_LOADED), Some(&int(0)));
    let append = spans.get("eventsource.event_store.append");
    assert_eq!(kind(append), SpanKind::Client);
    assert_eq!(
        attribute(append, attr::DB_OPERATION_NAME),
        Some(&string("append"))
    );
    assert_eq!(attribute(append, attr::EXPECTED_VERSION), Some(&int(0)));
    assert_eq!(attribute(append, attr::EVENT_COUNT), Some(&int(1)));
    let persisted = events(append, attr::SPAN_EVENT_EVENT_PERSISTED);
    assert_eq!(persisted.len(), 1);
    assert!(
        persisted[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EVENT_SEQUENCE && kv.value == int(1))
    );

    // The stored event carries the append span's context...
    let stored = &outcome.events[0];
    let stored_context =
        propagation::stored_span_context(&stored.metadata).expect("traceparent stored");
    assert_eq!(stored_context.span_id(), append.span_context.span_id());
    assert_eq!(stored_context.trace_id(), command.span_context.trace_id());

    // ...and the projection is a new root linked to it.
    let projection = spans.get("projection.OrderReadModel");
    assert_eq!(kind(projection), SpanKind::Consumer);
    spans.assert_linked_root(
        "projection.OrderReadModel",
        "eventsource.event_store.append",
    );
    assert_ne!(
        projection.span_context.trace_id(),
        command.span_context.trace_id()
    );
    assert_eq!(
        attribute(projection, attr::PROJECTION_NAME),
        Some(&string("OrderReadModel"))
    );
    assert_eq!(
        attribute(projection, attr::CQRS_SIDE),
        Some(&string("projection"))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_TYPE),
        Some(&string("OrderPlaced"))
    );
    assert_eq!(
        attribute(projection, attr::AGGREGATE_ID),
        Some(&string("o-1"))
    );
    assert_eq!(attribute(projection, attr::EVENT_SEQUENCE), Some(&int(1)));
    assert!(
        matches!(attribute(projection, attr::PROJECTION_LAG_MS), Some(Value::I64(lag)) if *lag >= 0)
    );
}

#[tokio::test]
async fn a_caller_span_is_the_command_span_parent() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    async {
        orders.execute(sample_order("o-1", "ada")).await.unwrap();
    }
    .instrument(tracing::info_span!("POST /orders"))
    .await;
    let spans = capture.spans();
    spans.assert_child_of("command.PlaceOrder", "POST /orders");
}

#[tokio::test]
async fn a_rejected_command_ends_with_error_and_one_exception() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap_err();
    let spans = capture.spans();
    let command = spans.get("command.ShipOrder");
    assert_eq!(
        command.status,
        Status::error("command rejected: order was never placed")
    );
    let exceptions = events(command, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1, "exactly one exception event");
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EXCEPTION_TYPE
                && kv.value.as_str().ends_with("OrderError"))
    );
    // The same class of error as a span attribute.
    assert!(
        attribute(command, attr::ERROR_TYPE).is_some_and(|t| t.as_str().ends_with("OrderError"))
    );
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE)
    );
    // Nothing was saved: no save span.
    assert!(spans.all("eventsource.repository.save").is_empty());
}

#[tokio::test]
async fn a_version_conflict_marks_the_append_and_command_spans() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let repo = Repository::<Order>::new(store.clone());
    let mut first = repo.load("o-1").await.unwrap();
    let mut second = repo.load("o-1").await.unwrap();
    first.record(domain::OrderCancelled { reason: "a".into() });
    second.record(domain::OrderCancelled { reason: "b".into() });
    repo.save(&mut first).await.unwrap();
    capture.clear();
    repo.save(&mut second).await.unwrap_err();
    let spans = capture.spans();
    let append = spans.get("eventsource.event_store.append");
    assert!(
        matches!(&append.status, Status::Error { description } if description.contains("version conflict"))
    );
    assert_eq!(events(append, attr::SPAN_EVENT_EXCEPTION).len(), 1);
    assert!(events(append, attr::SPAN_EVENT_EVENT_PERSISTED).is_empty());
}

#[tokio::test]
async fn projections_are_off_by_default() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let model = orders.register(OrderReadModel::default());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert!(
        model.lock().await.orders.contains_key("o-1"),
        "delivered all the same"
    );
    let spans = capture.spans();
    assert!(
        spans.all("projection.OrderReadModel").is_empty(),
        "{}",
        spans.tree()
    );
    assert!(!spans.all("command.PlaceOrder").is_empty());
}

#[tokio::test]
async fn component_switches_silence_their_component_only() {
    let capture = capture();
    let store = InMemoryEventStore::new().enable_tracing(false);
    let repository = Repository::<Order>::new(store.clone());
    let orders = CommandService::with_repository(repository, ProjectionRegistry::new());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let spans = capture.spans();
    assert!(
        spans.all("eventsource.event_store.load").is_empty(),
        "{}",
        spans.tree()
    );
    assert!(spans.all("eventsource.event_store.append").is_empty());
    spans.assert_child_of("eventsource.repository.save", "command.PlaceOrder");

    capture.clear();
    let repository = Repository::<Order>::new(InMemoryEventStore::new()).enable_tracing(false);
    let orders = CommandService::with_repository(repository, ProjectionRegistry::new());
    orders.execute(sample_order("o-2", "ada")).await.unwrap();
    let spans = capture.spans();
    assert!(
        spans.all("eventsource.repository.load").is_empty(),
        "{}",
        spans.tree()
    );
    // The store's spans now hang directly under the command.
    spans.assert_child_of("eventsource.event_store.append", "command.PlaceOrder");
}

#[tokio::test]
async fn replay_span_is_opt_in_and_load_records_the_count() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap();
    capture.clear();

    Repository::<Order>::new(store.clone())
        .load("o-1")
        .await
        .unwrap();
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&int(2)));
    assert_eq!(attribute(load, attr::VERSION), Some(&int(2)));
    assert!(spans.all(attr::SPAN_AGGREGATE_REPLAY).is_empty());

    capture.clear();
    Repository::<Order>::new(store)
        .trace_replay(true)
        .load("o-1")
        .await
        .unwrap();
    let spans = capture.spans();
    spans.assert_child_of(attr::SPAN_AGGREGATE_REPLAY, "eventsource.repository.load");
}

#[tokio::test]
async fn malformed_or_missing_stored_context_starts_a_new_unlinked_root() {
    let capture = capture();
    let store = InMemoryEventStore::new().enable_tracing(false);
    let stream = Repository::<Order>::stream("o-1");
    let placed = domain::OrderEvent::from(domain::OrderPlaced {
        customer_id: "ada".into(),
        items: vec![],
        shipping_address: String::new(),
        total_cents: 0,
    });
    let bad = NewEvent::from_event(&placed)
        .unwrap()
        .with_metadata(Metadata::new().with(Metadata::TRACEPARENT, "00-not-a-trace-01"));
    let none = NewEvent::from_event(&placed).unwrap();
    let appended = store
        .append(&stream, ExpectedVersion::NoStream, vec![bad, none])
        .await
        .unwrap();
    assert_eq!(
        appended.events[0].metadata.traceparent(),
        Some("00-not-a-trace-01"),
        "a caller's metadata is stored as given"
    );
    assert_eq!(
        appended.events[1].metadata.traceparent(),
        None,
        "no span, no context"
    );

    let (missing_before, malformed_before) = (
        propagation::missing_context_count(),
        propagation::malformed_context_count(),
    );
    let registry = ProjectionRegistry::new();
    let model = registry.register(TracedReadModel::default());
    let failures = registry.deliver(&appended.events).await;
    assert!(failures.is_empty());
    assert!(model.lock().await.0.orders.contains_key("o-1"));
    let spans = capture.spans();
    let projected = spans.all("projection.OrderReadModel");
    assert_eq!(projected.len(), 2);
    for span in projected {
        assert!(spans.is_root(span));
        assert!(span.links.links.is_empty());
    }
    assert!(propagation::malformed_context_count() > malformed_before);
    assert!(propagation::missing_context_count() > missing_before);
}

use tracing::Instrument as _;
