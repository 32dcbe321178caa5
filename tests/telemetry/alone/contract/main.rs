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
use eventsource_test_support::domain;
mod upcasting;

mod flows;
mod relations;
mod span_table;

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
use flows::{TracedReadModel, run_the_flows};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use relations::{check_relation, string_attribute};
use span_table::{SpanRow, keys_of, name_matches, span_paragraphs, span_rows};

/// Documented items the in-memory flows cannot produce, and the test that shows them.
const NOT_IN_MEMORY: &[(&str, &str)] = &[
    (
        "eventsource.projection.lease_lost",
        "a PostgreSQL lease's session must end: tests/stores/postgres_store/lost_leases.rs",
    ),
    (
        "eventsource.bus.messages.skipped",
        "a broker's consumer group skips: tests/brokers/suites/kafka/, tests/brokers/suites/nats/",
    ),
    (
        "eventsource.bus.consumer_group.stalls",
        "a broker's running consumer group stalls: tests/health/alone/health_brokers.rs",
    ),
];

/// Spans of this test's own `#[traced]` functions (the contract's `#[traced]` row).
const TRACED_SPANS: &[&str] = &["contract.lookup", "price"];

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
