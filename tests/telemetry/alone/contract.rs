//! The telemetry contract checks itself: this test parses the span and metric tables of
//! `docs/telemetry.md` and compares them with what the runtime exports, captured in memory,
//! while the order flow and the bus flows run (commands, a rejected command, a retried
//! command, snapshots, replays, live and redelivered and replayed and batched deliveries,
//! an idempotent handler's duplicate, projections one event and a batch at a time, a parked
//! unreadable event, queries, a `#[traced]` function, a correlation id's events).
//!
//! Both ways: every span the runtime made has a documented name, the documented kind and
//! relation, and only documented attribute keys; every documented span and attribute key
//! was seen. Every metric recorded is documented with its unit and its exact attribute set,
//! and every documented metric was recorded. Neither side can drift without this test
//! failing. What cannot happen in memory is listed in [`NOT_IN_MEMORY`], with the test that
//! covers it instead.
//!
//! One test function: the metric capture belongs to the whole binary.

use eventsource_test_support::contract_doc;
#[path = "../../../examples/domain/order.rs"]
mod domain;
#[path = "contract/upcasting.rs"]
mod upcasting;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use contract_doc::{CONTRACT, code_spans, metric_rows, table};
use domain::{CancelOrder, Order, OrderEvent, OrderReadModel, OrderShipped, ShipOrder};
use eventsource_runtime::bus::{
    BusError, BusMessage, BusTelemetry, Dispatcher, HandlerError, Idempotent,
    InMemoryProcessedMessages, PublishReport, instrument,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::UnreadablePolicy;
use eventsource_runtime::projection::segments::InMemorySegmentClaims;
use eventsource_runtime::snapshot::SnapshotStore;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::testing::{capture, capture_metrics};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

/// Documented items the in-memory flows cannot produce, and the test that shows them.
const NOT_IN_MEMORY: &[(&str, &str)] = &[
    (
        "eventsource.projection.lease_lost",
        "a PostgreSQL lease's session must end: tests/stores/postgres_store/lost_leases.rs",
    ),
    (
        "eventsource.bus.messages.skipped",
        "a broker's consumer group skips: tests/brokers/suites/kafka.rs, tests/brokers/suites/nats/",
    ),
    (
        "eventsource.bus.consumer_group.stalls",
        "a broker's running consumer group stalls: tests/health/alone/health_brokers.rs",
    ),
];

/// Spans of this test's own `#[traced]` functions (the contract's `#[traced]` row).
const TRACED_SPANS: &[&str] = &["contract.lookup", "price"];

// ---- the contract, parsed -------------------------------------------------------------------

/// One row of the span table.
#[derive(Debug)]
struct SpanRow {
    step: String,
    names: Vec<String>,
    kind: SpanKind,
    relation: String,
    keys: BTreeSet<String>,
}

/// The text between the span table and the next heading: paragraphs naming attributes
/// every store, broker or failed span may add.
fn span_paragraphs() -> String {
    let section = CONTRACT
        .split("\n## ")
        .find(|s| s.starts_with("Spans"))
        .unwrap();
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .skip_while(|line| line.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An attribute key: dotted lower-case words (`eventsource.aggregate.id`), not a value.
fn keys_of(cell: &str) -> BTreeSet<String> {
    code_spans(cell)
        .into_iter()
        .filter(|(token, is_value)| {
            !is_value
                && token.contains('.')
                && token
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                && !token.starts_with('.')
        })
        .map(|(token, _)| token)
        .collect()
}

fn kind_of(cell: &str) -> SpanKind {
    match cell.split_whitespace().next() {
        Some("INTERNAL") => SpanKind::Internal,
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        other => panic!("docs/telemetry.md: unknown span kind {other:?} in `{cell}`"),
    }
}

/// The span names a name cell allows: its code spans that look like names (not calls or
/// paths), with `{a,b}` expanded to alternatives; `{Placeholder}` stays as a wildcard.
fn names_of(cell: &str) -> Vec<String> {
    code_spans(cell)
        .into_iter()
        .map(|(token, _)| token)
        .filter(|token| !token.contains("::") && !token.contains('('))
        .flat_map(|token| match (token.find('{'), token.find('}')) {
            (Some(open), Some(close)) if token[open..close].contains(',') => token[open + 1..close]
                .split(',')
                .map(|alt| format!("{}{}{}", &token[..open], alt.trim(), &token[close + 1..]))
                .collect(),
            _ => vec![token],
        })
        .collect()
}

/// Whether `name` matches a documented pattern (`{Placeholder}` is one identifier).
fn name_matches(pattern: &str, name: &str) -> bool {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) => {
            let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
                && name[prefix.len()..name.len() - suffix.len()]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_')
        }
        _ => pattern == name,
    }
}

fn span_rows() -> Vec<SpanRow> {
    let rows: Vec<SpanRow> = table("Spans")
        .into_iter()
        .map(|cells| {
            assert_eq!(cells.len(), 5, "a span row has five cells: {cells:?}");
            SpanRow {
                step: cells[0].clone(),
                names: names_of(&cells[1]),
                kind: kind_of(&cells[2]),
                relation: cells[3].clone(),
                keys: keys_of(&cells[4]),
            }
        })
        .collect();
    assert!(rows.len() >= 15, "the span table parsed: {rows:#?}");
    rows
}

// ---- relations ----------------------------------------------------------------------------

fn string_attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn int_attribute(span: &SpanData, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match kv.value {
            opentelemetry::Value::I64(v) => Some(v),
            _ => None,
        })
}

/// Checks `span` against the relation the contract describes in prose. The phrases are
/// the contract's own; a relation this function does not know fails the test, so a new
/// row or a reworded one is taught here on purpose.
fn check_relation(relation: &str, span: &SpanData, all: &[SpanData]) -> Result<(), String> {
    let parent = all
        .iter()
        .find(|p| p.span_context.span_id() == span.parent_span_id);
    let parent_name = parent.map(|p| p.name.as_ref());
    let is_root = span.parent_span_id == opentelemetry::trace::SpanId::INVALID;
    let link_targets: Vec<&str> = span
        .links
        .links
        .iter()
        .map(|link| {
            all.iter()
                .find(|s| s.span_context.span_id() == link.span_context.span_id())
                .map_or("<not captured>", |s| s.name.as_ref())
        })
        .collect();
    let child_of = |expected: &dyn Fn(&str) -> bool, what: &str| match parent_name {
        Some(name) if expected(name) => Ok(()),
        _ => Err(format!(
            "a child of {what}, but its parent is {parent_name:?}"
        )),
    };
    let linked_roots = |per_link: &str| {
        if !is_root {
            return Err(format!("a new root, but its parent is {parent_name:?}"));
        }
        if link_targets.is_empty() || link_targets.iter().any(|t| *t != per_link) {
            return Err(format!(
                "linked to {per_link} spans, but links to {link_targets:?}"
            ));
        }
        Ok(())
    };
    let append = "eventsource.event_store.append";
    if relation.starts_with("child of the current span") {
        // The current span is whatever the caller had: a captured span or none.
        return match (is_root, parent) {
            (false, None) => Err("its parent was not captured".into()),
            _ => Ok(()),
        };
    }
    match relation {
        r if r.starts_with("child of the command") => {
            child_of(&|p| p.starts_with("command."), "a command span")
        }
        "child of the load span" => child_of(
            &|p| p == "eventsource.repository.load",
            "eventsource.repository.load",
        ),
        "child of the save span" => child_of(
            &|p| p == "eventsource.repository.save",
            "eventsource.repository.save",
        ),
        "child of consume" => child_of(
            &|p| p == "eventsource.event_bus.consume",
            "eventsource.event_bus.consume",
        ),
        r if r.starts_with("live delivery: child of the producer's context; batch, redelivery, replay: new root with a link per source message") =>
        {
            match string_attribute(span, "eventsource.delivery.mode").as_deref() {
                Some("live") => child_of(
                    &|p| p == "eventsource.event_bus.publish",
                    "the publish span",
                ),
                Some("batch" | "redelivery" | "replay") => {
                    let messages = int_attribute(span, "messaging.batch.message_count")
                        .map_or(1, |n| usize::try_from(n).unwrap());
                    if !is_root || span.links.links.len() != messages {
                        return Err(format!(
                            "a new root with {messages} link(s), but parent {parent_name:?}, links {link_targets:?}"
                        ));
                    }
                    Ok(())
                }
                other => Err(format!("an unknown delivery mode {other:?}")),
            }
        }
        "new root **linked** to the span that appended the event" => {
            linked_roots(append)?;
            if link_targets.len() == 1 {
                Ok(())
            } else {
                Err(format!("one link, but {link_targets:?}"))
            }
        }
        "new root with a **link** to the span that appended each event" => {
            linked_roots(append)?;
            let events = int_attribute(span, "eventsource.event.count").unwrap_or(0);
            if usize::try_from(events).unwrap() == link_targets.len() {
                Ok(())
            } else {
                Err(format!("{events} links, but {link_targets:?}"))
            }
        }
        "new root" => {
            if is_root {
                Ok(())
            } else {
                Err(format!("a new root, but its parent is {parent_name:?}"))
            }
        }
        other => Err(format!(
            "the contract describes a relation tests/telemetry/alone/contract.rs does not know: `{other}`"
        )),
    }
}

// ---- the flows ------------------------------------------------------------------------------

/// `OrderReadModel` with its spans on, as `#[projection(enable_tracing = true)]` does.
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

/// A handler that fails its first call, then succeeds (one redelivery).
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
async fn run_the_flows() {
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

// ---- the comparison -------------------------------------------------------------------------

/// Every key a span, its events and its links carry. A log line written inside the span
/// (an event with a `level`, as `tracing` records it: a dead letter's or a failed
/// publish's WARN) is not part of the contract.
fn keys_on(span: &SpanData) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = span
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .collect();
    let is_log_line = |event: &opentelemetry::trace::Event| {
        event.attributes.iter().any(|kv| kv.key.as_str() == "level")
    };
    for event in span.events.events.iter().filter(|e| !is_log_line(e)) {
        keys.extend(event.attributes.iter().map(|kv| kv.key.to_string()));
    }
    for link in &span.links.links {
        keys.extend(link.attributes.iter().map(|kv| kv.key.to_string()));
    }
    keys
}

#[tokio::test]
async fn the_contract_and_the_exported_telemetry_agree() {
    let metrics = capture_metrics();
    let capture = capture();
    run_the_flows().await;
    let spans = capture.spans().0;
    let rows = span_rows();
    // Keys any span may add besides its row's: the paragraphs under the table (stores,
    // brokers, errors), and `code.*` (the table's header says so).
    let shared_keys = keys_of(&span_paragraphs());
    for key in [
        "error.type",
        "exception.type",
        "exception.message",
        "db.namespace",
    ] {
        assert!(shared_keys.contains(key), "{key} in {shared_keys:?}");
    }

    let mut problems = Vec::new();
    let mut seen_keys: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut seen_names: BTreeSet<String> = BTreeSet::new();
    let mut saw_error = false;
    for span in &spans {
        let name = span.name.as_ref();
        let keys: BTreeSet<String> = keys_on(span)
            .into_iter()
            .filter(|k| !k.starts_with("code.") && !shared_keys.contains(k))
            .collect();
        let traced = TRACED_SPANS.contains(&name);
        let candidates: Vec<&SpanRow> = rows
            .iter()
            .filter(|row| {
                if traced {
                    row.names.iter().any(|n| n == "{fn}")
                } else {
                    !row.names.iter().any(|n| n == "{fn}")
                        && row.names.iter().any(|pattern| name_matches(pattern, name))
                }
            })
            .collect();
        // Two rows may share a name (one projection event, a batch of them): the span
        // belongs to the one documenting all its keys.
        let Some(row) = candidates
            .iter()
            .find(|row| traced || keys.is_subset(&row.keys))
            .or(candidates.first())
        else {
            problems.push(format!("span `{name}` is not in the contract"));
            continue;
        };
        seen_names.extend(
            row.names
                .iter()
                .filter(|pattern| name_matches(pattern, name))
                .cloned(),
        );
        if matches!(span.status, Status::Error { .. }) {
            saw_error = true;
            for key in ["error.type", "exception.type", "exception.message"] {
                if !keys_on(span).contains(key) && name != "eventsource.event_bus.consume" {
                    problems.push(format!("failed span `{name}` has no `{key}`"));
                }
            }
        }
        if span.span_kind != row.kind {
            problems.push(format!(
                "span `{name}`: kind {:?}, the contract says {:?}",
                span.span_kind, row.kind
            ));
        }
        let from_no_context =
            string_attribute(span, "messaging.destination.name").as_deref() == Some("no-context");
        if !traced
            && !from_no_context
            && let Err(why) = check_relation(&row.relation, span, &spans)
        {
            problems.push(format!("span `{name}` ({}): {why}", row.step));
        }
        if traced {
            continue; // the user's own attributes
        }
        let undocumented: Vec<&String> = keys.difference(&row.keys).collect();
        if !undocumented.is_empty() {
            problems.push(format!(
                "span `{name}` carries keys its row does not list: {undocumented:?}"
            ));
        }
        seen_keys
            .entry(&row.step)
            .or_default()
            .extend(keys_on(span));
    }
    assert!(saw_error, "the flows include a failure");
    for row in &rows {
        let traced = row.names.iter().any(|n| n == "{fn}");
        for pattern in &row.names {
            let named = traced || seen_names.contains(pattern);
            if !named {
                problems.push(format!("documented span `{pattern}` was never made"));
            }
        }
        if traced {
            continue;
        }
        let seen = seen_keys
            .get(row.step.as_str())
            .cloned()
            .unwrap_or_default();
        let missing: Vec<&String> = row.keys.difference(&seen).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "`{}` ({}): documented keys never exported: {missing:?}",
                row.names.join("`, `"),
                row.step
            ));
        }
    }

    // Metrics: every one recorded is documented with its unit and exact attribute set,
    // and every documented one was recorded.
    let documented = metric_rows();
    for name in metrics.names() {
        let Some(row) = documented.iter().find(|row| row.name == name) else {
            problems.push(format!("metric `{name}` is not in the contract"));
            continue;
        };
        let unit = metrics.unit(&name).unwrap_or_default();
        if unit != row.unit {
            problems.push(format!(
                "metric `{name}`: unit `{unit}`, the contract says `{}`",
                row.unit
            ));
        }
        let exported = metrics
            .histogram_buckets(&name, &[])
            .map(|buckets| buckets.bounds);
        if exported != row.boundaries {
            problems.push(format!(
                "metric `{name}`: bucket boundaries {exported:?}, the contract says {:?}",
                row.boundaries
            ));
        }
        // A key the contract says only some data points carry (`messaging.system` on the
        // consumer groups' lag, checked by tests/health/alone/health_brokers.rs) may be missing.
        let required: BTreeSet<String> = row.keys.difference(&row.optional_keys).cloned().collect();
        for point in metrics.data_point_attributes(&name) {
            let keys: BTreeSet<String> = point.iter().map(|kv| kv.key.to_string()).collect();
            if !keys.is_superset(&required) || !keys.is_subset(&row.keys) {
                problems.push(format!(
                    "metric `{name}`: a data point with keys {keys:?}, the contract says {:?}",
                    row.keys
                ));
            }
        }
    }
    let recorded = metrics.names();
    for row in &documented {
        let exempt = NOT_IN_MEMORY.iter().any(|(name, _)| *name == row.name);
        if !exempt && !recorded.contains(&row.name) {
            problems.push(format!(
                "documented metric `{}` was never recorded",
                row.name
            ));
        }
    }
    for (name, _) in NOT_IN_MEMORY {
        assert!(
            documented.iter().any(|row| row.name == *name),
            "{name} is exempted but not documented"
        );
    }

    let mut seen_problems = BTreeSet::new();
    problems.retain(|problem| seen_problems.insert(problem.clone()));
    assert!(
        problems.is_empty(),
        "docs/telemetry.md and the exported telemetry disagree:\n  {}\n\ncaptured:\n{}",
        problems.join("\n  "),
        capture.spans().tree()
    );
}

/// The table's "relation" and "kind" columns for one command with a bus handler and a traced
/// projection, written as the harness's own shape assertion (what a user's test would
/// write): the command encloses load (store read), save (append) and the publish, whose
/// consume and handle spans continue it; the projection is a new root linked to the append.
#[tokio::test]
async fn one_command_has_the_documented_trace_shape() {
    let capture = capture();
    let bus = InMemoryEventBus::new().with_destination("orders");
    bus.subscribe_fn("send-confirmation", |_event| async {
        Ok::<(), HandlerError>(())
    });
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.register(TracedReadModel::default());
    orders
        .execute(domain::sample_order("o-shape", "ada"))
        .await
        .unwrap();
    capture.spans().assert_shape(
        "
        command.PlaceOrder [internal] eventsource.aggregate.id=o-shape cqrs.side=write
          eventsource.repository.load [internal]
            eventsource.event_store.load [client] db.operation.name=load
          eventsource.repository.save [internal] eventsource.version=1
            eventsource.event_store.append [client] eventsource.event.count=1
          eventsource.event_bus.publish [producer] messaging.destination.name=orders
            eventsource.event_bus.consume [consumer] eventsource.delivery.mode=live
              eventsource.event_bus.handle [internal] eventsource.handler.name=send-confirmation
        projection.OrderReadModel [consumer] cqrs.side=projection -> eventsource.event_store.append
        ",
    );
}
