//! `#[projection]`: handler dispatch, delivery of handled types only, failures, and the
//! projection spans (off by default, switched on per projection or per instance, named,
//! linked to the span that appended the event).

use crate::domain;

use std::collections::BTreeMap;

use domain::{
    CancelOrder, Order, OrderCancelled, OrderEvent, OrderPlaced, OrderShipped, ShipOrder,
    sample_order,
};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::DeliveryFailure;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use serde::{Deserialize, Serialize};

// ---- Projections under test. --------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("refused to cancel {0}")]
struct Refused(String);

/// Records which handler saw what; every handler shape once.
#[derive(Debug, Default)]
struct Journal {
    calls: Vec<String>,
}

#[projection]
impl Journal {
    /// Sync, no envelope, returns `()`.
    fn placed(&mut self, event: &OrderPlaced) {
        self.calls.push(format!("placed by {}", event.customer_id));
    }

    /// Async, with the envelope, returns `()`.
    async fn shipped(&mut self, event: &OrderShipped, envelope: &EventEnvelope) {
        tokio::task::yield_now().await;
        self.calls.push(format!(
            "shipped {} v{} by {}",
            envelope.aggregate_id(),
            envelope.version,
            event.carrier
        ));
    }

    /// Sync, with the envelope (by its full path), returns a `Result`.
    fn cancelled(
        &mut self,
        event: &OrderCancelled,
        envelope: &eventsource_runtime::event::EventEnvelope,
    ) -> Result<(), Refused> {
        if event.reason == "refuse" {
            return Err(Refused(envelope.aggregate_id().to_owned()));
        }
        self.calls.push(format!(
            "cancelled {}: {}",
            envelope.aggregate_id(),
            event.reason
        ));
        Ok(())
    }

    /// Not a handler (`&self`): left alone.
    fn count(&self) -> usize {
        self.calls.len()
    }

    /// Not a handler (no receiver): left alone.
    fn with_call(call: &str) -> Self {
        Self {
            calls: vec![call.to_owned()],
        }
    }
}

/// Another aggregate's event, which no order projection handles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(Deposited))]
struct Account;

impl Apply<Deposited> for Account {
    fn apply(&mut self, _: &Deposited) {}
}

/// An async handler returning a boxed error.
#[derive(Debug, Default)]
struct Totals {
    cents: BTreeMap<String, u64>,
}

#[projection]
impl Totals {
    async fn placed(
        &mut self,
        event: &OrderPlaced,
        envelope: &EventEnvelope,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if event.total_cents == 0 {
            return Err("an order of nothing".into());
        }
        self.cents
            .insert(envelope.aggregate_id().to_owned(), event.total_cents);
        Ok(())
    }
}

/// Traced, handling only placements and cancellations.
#[derive(Debug, Default)]
struct TracedOrders {
    placed: usize,
}

#[projection(enable_tracing = true)]
impl TracedOrders {
    fn placed(&mut self, _: &OrderPlaced) {
        self.placed += 1;
    }

    fn cancelled(&mut self, event: &OrderCancelled) -> Result<(), Refused> {
        if event.reason == "refuse" {
            return Err(Refused("o-1".into()));
        }
        Ok(())
    }
}

/// Traced under chosen names.
#[derive(Debug, Default)]
struct Renamed;

#[projection(
    name = "projection.update",
    projection_name = "OrderUpdates",
    enable_tracing = true
)]
impl Renamed {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// Traced under a chosen projection name, default span name.
#[derive(Debug, Default)]
struct Named;

/// The switch of `Named`: any `bool` expression.
const TRACE_NAMED: bool = true;

#[projection(projection_name = "OrderList", enable_tracing = TRACE_NAMED)]
impl Named {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// Traced per instance.
#[derive(Debug, Default)]
struct Switchable {
    trace: bool,
}

#[projection(enable_tracing = self.trace)]
impl Switchable {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// A generic projection.
#[derive(Debug)]
struct Tagged<T> {
    tag: T,
    seen: Vec<String>,
}

#[projection]
impl<T> Tagged<T>
where
    T: std::fmt::Display + Send + 'static,
{
    fn placed(&mut self, event: &OrderPlaced) {
        self.seen
            .push(format!("{}:{}", self.tag, event.customer_id));
    }
}

// ---- Helpers. -----------------------------------------------------------------------------

fn placed(customer: &str, total_cents: u64) -> OrderEvent {
    OrderPlaced {
        customer_id: customer.into(),
        items: vec![],
        shipping_address: String::new(),
        total_cents,
    }
    .into()
}

fn shipped() -> OrderEvent {
    OrderShipped {
        carrier: "dhl".into(),
        tracking_number: "DHL-1".into(),
    }
    .into()
}

fn cancelled(reason: &str) -> OrderEvent {
    OrderCancelled {
        reason: reason.into(),
    }
    .into()
}

/// Appends `events` to order `id`'s stream (no spans) and returns the stored envelopes.
async fn stored(id: &str, events: &[OrderEvent]) -> Vec<EventEnvelope> {
    let store = InMemoryEventStore::new().enable_tracing(false);
    let new = events
        .iter()
        .map(|e| NewEvent::from_event(e).unwrap())
        .collect();
    store
        .append(&StreamId::new("Order", id), ExpectedVersion::Any, new)
        .await
        .unwrap()
        .events
}

fn ship(id: &str) -> ShipOrder {
    ShipOrder {
        order_id: id.into(),
        carrier: "dhl".into(),
    }
}

fn int(v: i64) -> Value {
    Value::I64(v)
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

// ---- Dispatch. ----------------------------------------------------------------------------

#[tokio::test]
async fn each_event_goes_to_the_handler_of_its_type() {
    let events = stored(
        "o-1",
        &[placed("ada", 100), shipped(), cancelled("too late")],
    )
    .await;
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(
        journal.lock().await.calls,
        [
            "placed by ada",
            "shipped o-1 v2 by dhl",
            "cancelled o-1: too late"
        ]
    );
}

#[tokio::test]
async fn the_impl_block_stays_as_written() {
    let mut journal = Journal::with_call("by hand");
    journal.placed(&OrderPlaced {
        customer_id: "bob".into(),
        items: vec![],
        shipping_address: String::new(),
        total_cents: 1,
    });
    assert_eq!(journal.count(), 2);
    assert_eq!(journal.calls[1], "placed by bob");
    assert_eq!(Projection::name(&journal), "Journal");
}

#[tokio::test]
async fn only_handled_event_types_are_delivered() {
    let journal = Journal::default();
    assert!(journal.handles("OrderPlaced"));
    assert!(journal.handles("OrderShipped"));
    assert!(journal.handles("OrderCancelled"));
    assert!(!journal.handles("Deposited"));
    assert_eq!(<Account as Aggregate>::TYPE, "Account");
    let totals = Totals::default();
    assert!(totals.handles("OrderPlaced"));
    assert!(!totals.handles("OrderShipped"));

    // An account's event reaches no order projection (and a `Totals` sees no shipment).
    let store = InMemoryEventStore::new().enable_tracing(false);
    let deposit = NewEvent::from_event(&AccountEvent::from(Deposited { cents: 5 })).unwrap();
    let mut events = store
        .append(
            &StreamId::new("Account", "a-1"),
            ExpectedVersion::NoStream,
            vec![deposit],
        )
        .await
        .unwrap()
        .events;
    events.extend(stored("o-1", &[placed("ada", 100), shipped()]).await);
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let totals = registry.register(Totals::default());
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(
        journal.lock().await.calls,
        ["placed by ada", "shipped o-1 v2 by dhl"]
    );
    assert_eq!(
        totals.lock().await.cents,
        BTreeMap::from([("o-1".into(), 100)])
    );
}

#[tokio::test]
async fn a_failing_handler_is_a_delivery_failure_and_the_rest_is_delivered() {
    let mut events = stored("o-1", &[cancelled("refuse"), shipped()]).await;
    events.extend(stored("o-2", &[placed("bob", 0), placed("eve", 300)]).await);
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let totals = registry.register(Totals::default());

    let failures = registry.deliver(&events).await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    let DeliveryFailure {
        projection,
        position,
        error,
    } = &failures[0];
    assert_eq!(projection, "Journal");
    assert_eq!(*position, events[0].position);
    assert!(matches!(error, ProjectionError::Handler(_)), "{error:?}");
    assert_eq!(error.to_string(), "refused to cancel o-1");
    assert_eq!(failures[1].projection, "Totals");
    assert_eq!(failures[1].position, events[2].position);
    assert_eq!(failures[1].error.to_string(), "an order of nothing");

    // Every other event reached both projections.
    assert_eq!(
        journal.lock().await.calls,
        ["shipped o-1 v2 by dhl", "placed by bob", "placed by eve"]
    );
    assert_eq!(
        totals.lock().await.cents,
        BTreeMap::from([("o-2".into(), 300)])
    );
}

#[tokio::test]
async fn a_payload_that_does_not_fit_is_a_decode_failure() {
    let store = InMemoryEventStore::new().enable_tracing(false);
    let bad = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": "lots" }));
    let events = store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            vec![bad],
        )
        .await
        .unwrap()
        .events;
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let failures = registry.deliver(&events).await;
    assert_eq!(failures.len(), 1);
    assert!(
        matches!(failures[0].error, ProjectionError::Decode(_)),
        "{:?}",
        failures[0].error
    );
    assert!(journal.lock().await.calls.is_empty());
}

#[tokio::test]
async fn a_generic_projection_dispatches_too() {
    let events = stored("o-1", &[placed("ada", 1), shipped()]).await;
    let registry = ProjectionRegistry::new();
    let tagged = registry.register(Tagged {
        tag: 7_u8,
        seen: vec![],
    });
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(tagged.lock().await.seen, ["7:ada"]);
    assert_eq!(tagged.lock().await.name(), "Tagged");
}

// ---- Spans. -------------------------------------------------------------------------------

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

// ---- in-process delivery hands handlers the recorded events -----------------------------------

/// JSON leaves `note` out: what tells a recorded event from a parsed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noted {
    pub n: u64,
    #[serde(skip)]
    pub note: Option<String>,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Pad", events(Noted))]
pub struct Pad;

impl Apply<Noted> for Pad {
    fn apply(&mut self, _: &Noted) {}
}

/// Another type under the same name: its handler gets the parsed payload.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct NotedCopy {
    pub n: u64,
    #[serde(skip)]
    pub note: Option<String>,
}

impl EventType for NotedCopy {
    const EVENT_TYPE: &'static str = "Noted";
}

#[derive(Debug, Default)]
struct Notes(Vec<Option<String>>);

#[projection]
impl Notes {
    fn noted(&mut self, event: &Noted) {
        self.0.push(event.note.clone());
    }
}

#[derive(Debug, Default)]
struct ParsedNotes(Vec<Option<String>>);

#[projection]
impl ParsedNotes {
    fn noted(&mut self, event: &NotedCopy) {
        self.0.push(event.note.clone());
    }
}

#[tokio::test]
async fn handlers_get_the_recorded_event_in_process() {
    let store = InMemoryEventStore::new();
    let pads = CommandService::<Pad>::new(store.clone());
    let notes = pads.register(Notes::default());
    let parsed = pads.register(ParsedNotes::default());
    pads.execute_with("p-1", |_| {
        Ok::<_, std::convert::Infallible>(vec![
            Noted {
                n: 1,
                note: Some("recorded".into()),
            }
            .into(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(notes.lock().await.0, [Some("recorded".to_owned())]);
    assert_eq!(parsed.lock().await.0, [None]);

    // From the store (a runner, a replay), every handler gets the parsed event.
    let mut replayed = Notes::default();
    for envelope in store.read_all(1, 10).await.unwrap() {
        replayed.handle(&envelope).await.unwrap();
    }
    assert_eq!(replayed.0, [None]);
}
