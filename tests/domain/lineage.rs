//! Lineage, on the in-memory, SQLite and PostgreSQL stores: the correlation and causation
//! ids every command stamps (the caller's, a new one, the handled message's), passed on by a
//! handler that runs a command; `eventsource.correlation.id` on the command, publish,
//! consume, handle and store spans; `events_by_correlation` in global order, from the index
//! (SQLite's query plan, PostgreSQL's catalog and plan), and through the trait's default;
//! the causation tree of a two-service story, as text and JSON, with trace ids.
//!
//! PostgreSQL comes from `DATABASE_URL` (skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1`).

use crate::postgres;
use eventsource_test_support::envelopes::order_placed;
use eventsource_test_support::lineage_domain as domain;
use eventsource_test_support::stores::{Intercept, Over};

use domain::{Cart, CheckOut, fulfilment};
use eventsource_runtime::bus::{BusMessage, BusTelemetry, Dispatcher};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::lineage::{CausationTree, Lineage, Node};
use eventsource_runtime::prelude::*;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::AppendResult;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, SpanData, attribute, capture};
use opentelemetry::Value;
use postgres::TestDb;

fn correlation_of(event: &EventEnvelope) -> &str {
    event.metadata.correlation_id().expect("a correlation id")
}

fn causation_of(event: &EventEnvelope) -> &str {
    event.metadata.causation_id().expect("a causation id")
}

/// A SQLite store in a file of its own (in cargo's temporary directory for tests, under
/// `target/`), migrated.
async fn sqlite(name: &str) -> SqliteEventStore {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "eventsource-lineage-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    let store = SqliteEventStore::connect(path.to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

// ---- stamping -------------------------------------------------------------------------------

/// A command alone, a command with the caller's ids, a command with an id.
async fn commands_stamp_their_lineage(store: impl EventStore + Clone) {
    let carts = CommandService::<Cart>::new(store.clone());
    let checkout = |cart: &str| CheckOut {
        cart_id: cart.into(),
        items: 1,
    };

    // Alone: a new UUID v7, both ids.
    let alone = carts.execute(checkout("c-1")).await.unwrap();
    let event = &alone.events[0];
    let id: uuid::Uuid = correlation_of(event).parse().expect("a UUID");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(causation_of(event), correlation_of(event));

    // The caller's correlation id; the causation id is then the command's new id.
    let given = Metadata::new().with(Metadata::CORRELATION_ID, "http-req-9");
    let outcome = carts
        .execute_with_metadata(checkout("c-2"), given)
        .await
        .unwrap();
    let event = &outcome.events[0];
    assert_eq!(correlation_of(event), "http-req-9");
    assert!(causation_of(event).parse::<uuid::Uuid>().is_ok());
    // Both of the caller's.
    let both = Metadata::new()
        .with(Metadata::CORRELATION_ID, "http-req-9")
        .with(Metadata::CAUSATION_ID, "upstream-msg-3");
    let outcome = carts
        .execute_with_metadata(checkout("c-3"), both)
        .await
        .unwrap();
    assert_eq!(causation_of(&outcome.events[0]), "upstream-msg-3");

    // A command id is the cause (and is not the correlation id).
    let once = carts.execute_once("req-4", checkout("c-4")).await.unwrap();
    let event = &once.events[0];
    assert_eq!(causation_of(event), "req-4");
    assert_ne!(correlation_of(event), "req-4");

    // As stored, read back.
    let stored = store.load(&StreamId::new("Cart", "c-2"), 1).await.unwrap();
    assert_eq!(correlation_of(&stored[0]), "http-req-9");
    let stored = store.load(&StreamId::new("Cart", "c-4"), 1).await.unwrap();
    assert_eq!(causation_of(&stored[0]), "req-4");
}

/// The two services: the cart's checkout published on an in-memory bus, the fulfilment
/// handler running `PrepareShipment` on the other store. Returns the checkout event.
async fn two_services(
    carts_store: impl EventStore + Clone,
    shipments_store: impl EventStore + Clone,
) -> EventEnvelope {
    let bus = InMemoryEventBus::new().with_destination("carts");
    bus.subscribe(fulfilment(CommandService::new(shipments_store.clone())));
    let carts = CommandService::<Cart>::new(carts_store.clone()).with_bus(bus);
    let checkout = CheckOut {
        cart_id: "cart-1".into(),
        items: 3,
    };
    let outcome = carts.execute(checkout).await.unwrap();
    assert!(outcome.publish_error().is_none());
    let checked_out = outcome.events[0].clone();

    // The shipment's events carry the checkout's correlation id, the checkout as cause.
    let shipment = shipments_store
        .load(&StreamId::new("Shipment", "cart-1"), 1)
        .await
        .unwrap();
    assert_eq!(shipment.len(), 2);
    for event in &shipment {
        assert_eq!(correlation_of(event), correlation_of(&checked_out));
        assert_eq!(causation_of(event), checked_out.event_id.to_string());
    }
    // Listed by correlation id, each store its own, in global order.
    let carts_listed = carts_store
        .events_by_correlation(correlation_of(&checked_out))
        .await
        .unwrap();
    let carts_ids: Vec<uuid::Uuid> = carts_listed.iter().map(|e| e.event_id).collect();
    assert_eq!(carts_ids, [checked_out.event_id]);
    let listed = shipments_store
        .events_by_correlation(correlation_of(&checked_out))
        .await
        .unwrap();
    let ids: Vec<uuid::Uuid> = listed.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, shipment.iter().map(|e| e.event_id).collect::<Vec<_>>());
    checked_out
}

/// A message from a producer that stamped nothing: its own id is the correlation id.
async fn an_unstamped_message_correlates_by_its_own_id(shipments_store: impl EventStore + Clone) {
    let dispatcher = Dispatcher::new("carts", BusTelemetry::new("in_memory"));
    dispatcher.subscribe(fulfilment(CommandService::new(shipments_store.clone())));
    let legacy = EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Cart", "legacy-1"),
        version: 1,
        position: 1,
        event_type: "CheckedOut".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({ "items": 1 }).into(),
        metadata: Metadata::new(),
    };
    let message = BusMessage::new("carts", legacy.clone());
    assert!(dispatcher.deliver(&message).await.is_empty());
    let shipment = shipments_store
        .load(&StreamId::new("Shipment", "legacy-1"), 1)
        .await
        .unwrap();
    let id = legacy.event_id.to_string();
    assert_eq!(correlation_of(&shipment[0]), id);
    assert_eq!(causation_of(&shipment[0]), id);
}

/// `events_by_correlation` keeps one correlation id's events, in global order, across
/// streams, and leaves events without one (appended without a command) out.
async fn listing_keeps_global_order(store: impl EventStore + Clone) {
    let tagged = |correlation: &str, n: u64| {
        NewEvent::new("Tagged", 1, serde_json::json!({ "n": n }))
            .with_metadata(Metadata::new().with(Metadata::CORRELATION_ID, correlation))
    };
    let plain = NewEvent::new("Plain", 1, serde_json::json!({}));
    let mut expected = Vec::new();
    for (i, stream) in ["a", "b", "a", "c"].into_iter().enumerate() {
        let stream = StreamId::new("Tag", stream);
        let n = i as u64;
        let events = vec![tagged("order-x", n), tagged("order-y", n), plain.clone()];
        let AppendResult { events, .. } = store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
        expected.push(events[0].position);
    }
    let listed = store.events_by_correlation("order-x").await.unwrap();
    let positions: Vec<u64> = listed.iter().map(|e| e.position).collect();
    assert_eq!(positions, expected);
    assert!(listed.iter().all(|e| correlation_of(e) == "order-x"));
    assert!(
        store
            .events_by_correlation("nobody")
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- spans ----------------------------------------------------------------------------------

fn correlation_attribute(span: &SpanData) -> Option<String> {
    attribute(span, attr::CORRELATION_ID).map(|v| v.as_str().into_owned())
}

/// Every command, publish, consume and handle span of the story carries the checkout's
/// correlation id.
fn the_spans_carry_it(spans: &CapturedSpans, correlation_id: &str) {
    for name in [
        "command.CheckOut",
        "command.PrepareShipment",
        attr::SPAN_BUS_PUBLISH,
        attr::SPAN_BUS_CONSUME,
        attr::SPAN_BUS_HANDLE,
    ] {
        let all = spans.all(name);
        assert!(!all.is_empty(), "no {name}: {}", spans.tree());
        for span in all {
            assert_eq!(
                correlation_attribute(span).as_deref(),
                Some(correlation_id),
                "{name}: {}",
                spans.tree_with_attributes()
            );
        }
    }
    // The crate's stores list under their own span (a store of one's own reads through
    // `read_all`).
    for span in spans.all(attr::SPAN_STORE_EVENTS_BY_CORRELATION) {
        assert_eq!(correlation_attribute(span).as_deref(), Some(correlation_id));
        assert!(attribute(span, attr::EVENTS_LOADED).is_some());
        assert!(matches!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(Value::String(s)) if s.as_str() == "events_by_correlation"
        ));
    }
}

// ---- the tree -------------------------------------------------------------------------------

/// The tree of the story across both stores: the checkout under its command, the two
/// shipment events under the checkout, each with the trace id of the command's trace.
async fn the_tree_spans_both_services(
    carts_store: impl EventStore,
    shipments_store: impl EventStore,
    checked_out: &EventEnvelope,
    trace_id: &str,
) {
    let correlation_id = correlation_of(checked_out);
    let carts = carts_store
        .events_by_correlation(correlation_id)
        .await
        .unwrap();
    let shipments = shipments_store
        .events_by_correlation(correlation_id)
        .await
        .unwrap();
    let tree = CausationTree::from_events(correlation_id, carts.into_iter().chain(shipments));
    assert!(tree.notes.is_empty());
    assert_eq!(tree.len(), 3);
    let [Node::Cause(command)] = tree.roots.as_slice() else {
        panic!("one command: {tree}");
    };
    assert_eq!(
        command.id, correlation_id,
        "a command alone: its id is the correlation's"
    );
    let checkout = &command.children[0];
    assert_eq!(checkout.id, checked_out.event_id);
    let text = tree.to_string();
    let expected = format!(
        "correlation {correlation_id}\n\
         └─ cause {correlation_id}\n   \
            └─ CheckedOut Cart/cart-1 v1 @{} trace {trace_id}\n      \
               ├─ ShipmentPrepared Shipment/cart-1 v1 @{} trace {trace_id}\n      \
               └─ ShipmentPacked Shipment/cart-1 v2 @{} trace {trace_id}\n",
        checkout.position, checkout.children[0].position, checkout.children[1].position,
    );
    assert_eq!(text, expected);

    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["correlation_id"], correlation_id);
    let root = &json["roots"][0];
    assert_eq!(root["kind"], "cause");
    assert_eq!(root["id"], correlation_id);
    let checkout = &root["children"][0];
    assert_eq!(checkout["kind"], "event");
    assert_eq!(checkout["event_type"], "CheckedOut");
    assert_eq!(checkout["aggregate_type"], "Cart");
    assert_eq!(checkout["trace_id"], trace_id);
    assert_eq!(checkout["causation_id"], correlation_id);
    let shipment = &checkout["children"];
    assert_eq!(shipment[0]["event_type"], "ShipmentPrepared");
    assert_eq!(shipment[1]["event_type"], "ShipmentPacked");
    assert_eq!(shipment[1]["trace_id"], trace_id);
    assert_eq!(
        shipment[1]["causation_id"],
        checked_out.event_id.to_string()
    );
    assert_eq!(shipment[1]["children"], serde_json::json!([]));

    // One store alone: the shipment events under the cause they came from elsewhere.
    let alone = CausationTree::load(&shipments_store, correlation_id)
        .await
        .unwrap();
    let [Node::Cause(elsewhere)] = alone.roots.as_slice() else {
        panic!("{alone}");
    };
    assert_eq!(elsewhere.id, checked_out.event_id.to_string());
    assert_eq!(elsewhere.children.len(), 2);
}

/// The whole story on one kind of store: stamping, two services, spans, the tree.
async fn the_story(carts_store: impl EventStore + Clone, shipments_store: impl EventStore + Clone) {
    commands_stamp_their_lineage(carts_store.clone()).await;
    let capture = capture();
    let checked_out = two_services(carts_store.clone(), shipments_store.clone()).await;
    let correlation_id = correlation_of(&checked_out).to_owned();
    let tree_spans = capture.spans();
    let command = tree_spans.get("command.CheckOut");
    let trace_id = command.span_context.trace_id().to_string();
    the_tree_spans_both_services(
        carts_store.clone(),
        shipments_store.clone(),
        &checked_out,
        &trace_id,
    )
    .await;
    let spans = capture.spans();
    the_spans_carry_it(&spans, &correlation_id);
    let listed = spans.all(attr::SPAN_STORE_EVENTS_BY_CORRELATION).len();
    let own = carts_store.system_name() == "only_required";
    assert_eq!(listed, if own { 0 } else { 5 }, "{}", spans.tree());
    drop(capture);
    an_unstamped_message_correlates_by_its_own_id(shipments_store).await;
    listing_keeps_global_order(carts_store).await;
}

#[tokio::test]
async fn in_memory() {
    the_story(InMemoryEventStore::new(), InMemoryEventStore::new()).await;
}

#[tokio::test]
async fn sqlite_lists_a_correlation_from_its_index() {
    let carts = sqlite("carts").await;
    the_story(carts.clone(), sqlite("shipments").await).await;

    let rows = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT position FROM events WHERE correlation_id = ?1 \
         ORDER BY position",
    )
    .bind("x")
    .fetch_all(carts.pool())
    .await
    .unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
        .collect();
    let plan = plan.join("; ");
    assert!(
        plan.contains("USING INDEX events_correlation_id"),
        "the store's query reads the index: {plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}

#[tokio::test]
async fn postgres_lists_a_correlation_from_its_index() {
    let Some(db) = TestDb::open("lineage::postgres").await else {
        return;
    };
    let pool = db.pool(4).await;
    let (carts_schema, shipments_schema) = (db.schema(), db.schema());
    let carts = db.store_in(&pool, &carts_schema).await;
    let shipments = db.store_in(&pool, &shipments_schema).await;
    the_story(carts.clone(), shipments).await;

    // The index is in the catalog, and the query reads it.
    let definition: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'events_correlation_id'",
    )
    .bind(&carts_schema)
    .fetch_one(db.admin())
    .await
    .unwrap();
    assert!(definition.contains("correlation_id"), "{definition}");
    let mut tx = pool.begin().await.unwrap();
    // A test table is small: the planner would scan it. Forbid that, to see the index
    // serves the store's statement (and its order).
    for setting in ["enable_seqscan", "enable_bitmapscan"] {
        sqlx::query(&format!("SET LOCAL {setting} = off"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT position FROM \"{carts_schema}\".events \
         WHERE (metadata ->> 'correlation_id') = 'x' ORDER BY position"
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using events_correlation_id"),
        "{plan}"
    );
    assert!(!plan.contains("Sort"), "the index gives the order: {plan}");
    tx.rollback().await.unwrap();
    pool.close().await;
    db.cleanup().await;
}

// ---- the trait's default --------------------------------------------------------------------

/// A store of a user's own: only the required methods (`Over` implements no other), over
/// an in-memory store.
#[derive(Clone)]
struct OnlyRequired(InMemoryEventStore);

impl Intercept for OnlyRequired {
    type Inner = InMemoryEventStore;

    fn inner(&self) -> &InMemoryEventStore {
        &self.0
    }

    fn system_name(&self) -> &'static str {
        "only_required"
    }
}

#[tokio::test]
async fn a_store_of_ones_own_lists_a_correlation_through_read_all() {
    the_story(
        Over(OnlyRequired(InMemoryEventStore::new())),
        Over(OnlyRequired(InMemoryEventStore::new())),
    )
    .await;

    // More events than one page of the default's reads: every one is found, in order.
    let inner = InMemoryEventStore::new();
    let store = Over(OnlyRequired(inner.clone()));
    let event = |n: u64| {
        let metadata =
            Metadata::new().with(Metadata::CORRELATION_ID, ["odd", "even"][(n % 2) as usize]);
        NewEvent::new("Counted", 1, serde_json::json!({ "n": n })).with_metadata(metadata)
    };
    for chunk in 0..5_u64 {
        let events = (chunk * 500..(chunk + 1) * 500).map(event).collect();
        store
            .append(&StreamId::new("Counter", "c"), ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let even = store.events_by_correlation("even").await.unwrap();
    assert_eq!(even.len(), 1_250);
    assert!(even.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(even, inner.events_by_correlation("even").await.unwrap());
}

// ---- the ambient lineage --------------------------------------------------------------------

/// A message's lineage: its correlation id (its own id when it carries none) and itself as
/// the cause, as its ids read, compare, print, and reach a command's events.
#[tokio::test]
async fn a_message_passes_on_its_correlation_and_itself_as_the_cause() {
    let mut tagged = order_placed("o-1");
    tagged.metadata = Metadata::new().with(Metadata::CORRELATION_ID, "checkout-7");
    let lineage = Lineage::of_event(&tagged);
    let id = tagged.event_id.to_string();
    assert_eq!(lineage, Lineage::new("checkout-7", id.as_str()));
    assert_eq!(
        lineage.clone().causation_id(),
        id,
        "a clone writes the same text"
    );
    assert_eq!(
        format!("{lineage:?}"),
        format!("Lineage {{ correlation_id: \"checkout-7\", causation_id: \"{id}\" }}")
    );

    // A producer that stamped nothing: the message's own id is the correlation id too.
    let bare = order_placed("o-2");
    let lineage = Lineage::of_event(&bare);
    let id = bare.event_id.to_string();
    assert_eq!(lineage.correlation_id(), id);
    assert_eq!(lineage, Lineage::new(id.as_str(), id.as_str()));
    assert_ne!(lineage, Lineage::of_event(&tagged));

    let carts = CommandService::<Cart>::new(InMemoryEventStore::new());
    let outcome = lineage
        .scope(carts.execute(CheckOut {
            cart_id: "c-10".into(),
            items: 1,
        }))
        .await
        .unwrap();
    assert_eq!(correlation_of(&outcome.events[0]), id);
    assert_eq!(causation_of(&outcome.events[0]), id);
}

#[tokio::test]
async fn a_spawned_task_carries_the_lineage_it_is_given() {
    let store = InMemoryEventStore::new();
    let carts = CommandService::<Cart>::new(store.clone());
    let lineage = Lineage::new("saga-1", "step-4");
    let spawned = tokio::spawn(lineage.scope(async move {
        carts
            .execute(CheckOut {
                cart_id: "c-9".into(),
                items: 1,
            })
            .await
            .unwrap()
    }));
    let outcome = spawned.await.unwrap();
    assert_eq!(correlation_of(&outcome.events[0]), "saga-1");
    assert_eq!(causation_of(&outcome.events[0]), "step-4");
    assert_eq!(Lineage::current(), None);
}
