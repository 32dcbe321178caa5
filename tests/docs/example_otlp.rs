//! The real `orders` example, run as a child process exporting OTLP over HTTP/JSON to a
//! collector this test runs on 127.0.0.1: what a user sees in Jaeger or Tempo is the
//! telemetry contract's trace shape, with the right OTLP value types.
//!
//! The example binary is (re)built with `cargo build --example orders` (a no-op when it is
//! up to date; `cargo test --test docs example_otlp` does not build examples by itself) and run
//! from `target/<profile>/examples/`, next to this test's executable.

use crate::otlp;
use crate::otlp_collector;

use otlp::{
    AttrValue, KIND_CLIENT, KIND_CONSUMER, KIND_INTERNAL, KIND_PRODUCER, STATUS_ERROR,
    STATUS_UNSET, Span, array, attributes, decode, example_binary, example_command, tree,
};
use otlp_collector::{Request, collector};
use std::process::Output;

use eventsource_runtime::telemetry::attributes as attr;
use serde_json::Value as Json;

// OTLP enums, as numbers (`SpanKind`, `StatusCode`).

#[test]
fn the_orders_example_exports_the_contract_traces_over_otlp_http_json() {
    let (endpoint, requests) = collector();
    let output = run_example(&endpoint);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ShipOrder order-2 -> rejected: order was cancelled"),
        "{stdout}"
    );
    assert!(
        stdout.contains("confirmation sent to ada for order-1"),
        "{stdout}"
    );

    let requests = requests.lock().unwrap().clone();
    let traces: Vec<&Request> = requests.iter().filter(|r| r.path == "/v1/traces").collect();
    assert!(
        !traces.is_empty(),
        "no /v1/traces request: {:?}\nstderr:\n{}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    for request in &traces {
        assert_eq!(request.content_type, "application/json");
    }
    let bodies: Vec<Json> = traces
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("an OTLP/JSON body"))
        .collect();

    // The resource: the service name defaults to the executable's name.
    for body in &bodies {
        for resource_spans in array(&body["resourceSpans"]) {
            let resource = attributes(&resource_spans["resource"]["attributes"]);
            assert_eq!(
                resource.get("service.name"),
                Some(&AttrValue::Str("orders".into())),
                "{resource:?}"
            );
        }
    }

    let spans = decode(&bodies);
    let dump = tree(&spans);

    // Nothing the contract leaves out: no location, thread, target or timing attributes.
    for span in &spans {
        for key in span.attributes.keys() {
            assert!(
                !key.starts_with("code.")
                    && !key.starts_with("thread.")
                    && !["busy_ns", "idle_ns", "target"].contains(&key.as_str()),
                "span `{}` carries `{key}`:\n{dump}",
                span.name
            );
        }
    }

    // ---- the first PlaceOrder: exactly eight spans in its trace ---------------------------
    let command = spans
        .iter()
        .filter(|s| s.name == "command.PlaceOrder")
        .min_by_key(|s| s.start)
        .unwrap_or_else(|| panic!("no command.PlaceOrder span:\n{dump}"));
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == command.trace_id)
        .collect();
    let mut names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "command.PlaceOrder",
            "eventsource.event_bus.consume",
            "eventsource.event_bus.handle",
            "eventsource.event_bus.publish",
            "eventsource.event_store.append",
            "eventsource.event_store.load",
            "eventsource.repository.load",
            "eventsource.repository.save",
        ],
        "{dump}"
    );
    let named = |name: &str| -> &Span { trace.iter().find(|s| s.name == name).unwrap() };

    assert!(command.parent_span_id.is_empty(), "a root:\n{dump}");
    assert_eq!(command.kind, KIND_INTERNAL);
    assert_eq!(command.status_code, STATUS_UNSET);
    assert_eq!(command.str(attr::COMMAND_TYPE), "PlaceOrder");
    assert_eq!(command.str(attr::AGGREGATE_TYPE), "Order");
    assert_eq!(command.str(attr::AGGREGATE_ID), "order-1");
    assert_eq!(command.str(attr::CQRS_SIDE), "write");
    assert_eq!(command.int(attr::EVENT_COUNT), 1);
    assert_eq!(
        command.attributes.get(attr::EVENT_TYPES),
        Some(&AttrValue::StrArray(vec!["OrderPlaced".into()])),
        "a string array"
    );
    assert_eq!(command.events.len(), 1, "{:?}", command.events);
    let (event_name, event_attrs) = &command.events[0];
    assert_eq!(event_name, attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED);
    assert_eq!(
        event_attrs.get(attr::EVENT_TYPE),
        Some(&AttrValue::Str("OrderPlaced".into()))
    );

    // load -> store load
    let load = named("eventsource.repository.load");
    assert_eq!(load.parent_span_id, command.span_id, "{dump}");
    assert_eq!(load.kind, KIND_INTERNAL);
    assert_eq!(load.str(attr::AGGREGATE_ID), "order-1");
    assert_eq!(load.str(attr::AGGREGATE_TYPE), "Order");
    assert_eq!(load.int(attr::EVENTS_REPLAYED), 0);
    assert_eq!(load.int(attr::VERSION), 0);
    assert_eq!(
        load.attributes.get(attr::SNAPSHOT_USED),
        Some(&AttrValue::Bool(false))
    );
    let store_load = named("eventsource.event_store.load");
    assert_eq!(store_load.parent_span_id, load.span_id, "{dump}");
    assert_eq!(store_load.kind, KIND_CLIENT);
    assert_eq!(store_load.str(attr::DB_SYSTEM_NAME), "in_memory");
    assert_eq!(store_load.str(attr::DB_OPERATION_NAME), "load");
    assert_eq!(store_load.str(attr::AGGREGATE_ID), "order-1");
    assert_eq!(store_load.int(attr::FROM_VERSION), 1);
    assert_eq!(store_load.int(attr::EVENTS_LOADED), 0);
    assert!(store_load.events.is_empty(), "{:?}", store_load.events);

    // save -> append
    let save = named("eventsource.repository.save");
    assert_eq!(save.parent_span_id, command.span_id, "{dump}");
    assert_eq!(save.kind, KIND_INTERNAL);
    assert_eq!(save.str(attr::AGGREGATE_ID), "order-1");
    assert_eq!(save.int(attr::EXPECTED_VERSION), 0);
    assert_eq!(save.int(attr::EVENT_COUNT), 1);
    assert_eq!(save.int(attr::VERSION), 1);
    let append = named("eventsource.event_store.append");
    assert_eq!(append.parent_span_id, save.span_id, "{dump}");
    assert_eq!(append.kind, KIND_CLIENT);
    assert_eq!(append.str(attr::DB_SYSTEM_NAME), "in_memory");
    assert_eq!(append.str(attr::DB_OPERATION_NAME), "append");
    assert_eq!(append.int(attr::EXPECTED_VERSION), 0);
    assert_eq!(append.int(attr::EVENT_COUNT), 1);
    assert_eq!(append.events.len(), 1, "{:?}", append.events);
    let (event_name, event_attrs) = &append.events[0];
    assert_eq!(event_name, attr::SPAN_EVENT_EVENT_PERSISTED);
    assert_eq!(
        event_attrs.get(attr::EVENT_TYPE),
        Some(&AttrValue::Str("OrderPlaced".into()))
    );
    assert_eq!(
        event_attrs.get(attr::EVENT_SEQUENCE),
        Some(&AttrValue::Int(1)),
        "an intValue"
    );

    // publish -> consume -> handle: the event on the bus, the handler confirming the order
    let publish = named(attr::SPAN_BUS_PUBLISH);
    assert_eq!(publish.parent_span_id, command.span_id, "{dump}");
    assert_eq!(publish.kind, KIND_PRODUCER);
    assert_eq!(publish.str(attr::MESSAGING_SYSTEM), "in_memory");
    assert_eq!(publish.str(attr::MESSAGING_DESTINATION_NAME), "orders");
    assert_eq!(publish.str(attr::MESSAGING_OPERATION_TYPE), "send");
    assert_eq!(publish.str(attr::EVENT_TYPE), "OrderPlaced");
    let message_id = publish.str(attr::MESSAGING_MESSAGE_ID);
    assert_eq!(message_id.len(), 36, "the event id: {message_id}");
    let consume = named(attr::SPAN_BUS_CONSUME);
    assert_eq!(consume.parent_span_id, publish.span_id, "{dump}");
    assert_eq!(consume.kind, KIND_CONSUMER);
    assert!(consume.links.is_empty());
    assert_eq!(consume.str(attr::MESSAGING_SYSTEM), "in_memory");
    assert_eq!(consume.str(attr::MESSAGING_DESTINATION_NAME), "orders");
    assert_eq!(consume.str(attr::MESSAGING_OPERATION_TYPE), "process");
    assert_eq!(consume.str(attr::MESSAGING_MESSAGE_ID), message_id);
    assert_eq!(consume.str(attr::EVENT_TYPE), "OrderPlaced");
    let handle = named(attr::SPAN_BUS_HANDLE);
    assert_eq!(handle.parent_span_id, consume.span_id, "{dump}");
    assert_eq!(handle.kind, KIND_INTERNAL);
    assert_eq!(handle.str(attr::HANDLER_NAME), "send-confirmation");
    for span in &trace {
        assert_eq!(span.status_code, STATUS_UNSET, "`{}`", span.name);
    }
    // The handler confirms placed orders only: the other commands publish, nobody consumes.
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == attr::SPAN_BUS_PUBLISH)
            .count(),
        4,
        "{dump}"
    );
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == attr::SPAN_BUS_HANDLE)
            .count(),
        2,
        "{dump}"
    );

    // ---- the projection of that event: a CONSUMER root of its own trace, linked -----------
    let projection = spans
        .iter()
        .find(|s| {
            s.name == "projection.OrderReadModel"
                && s.links
                    .iter()
                    .any(|(t, s)| *t == append.trace_id && *s == append.span_id)
        })
        .unwrap_or_else(|| panic!("no projection span linked to the append span:\n{dump}"));
    assert_ne!(projection.trace_id, command.trace_id);
    assert!(projection.parent_span_id.is_empty(), "a root");
    assert_eq!(projection.kind, KIND_CONSUMER);
    assert_eq!(projection.links.len(), 1);
    assert_eq!(projection.str(attr::PROJECTION_NAME), "OrderReadModel");
    assert_eq!(projection.str(attr::CQRS_SIDE), "projection");
    assert_eq!(projection.str(attr::EVENT_TYPE), "OrderPlaced");
    assert_eq!(projection.str(attr::AGGREGATE_ID), "order-1");
    assert_eq!(projection.int(attr::EVENT_SEQUENCE), 1);
    assert!(projection.int(attr::PROJECTION_LAG_MS) >= 0);
    // Four events were projected (two placed, one shipped, one cancelled), each linked.
    let projected: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "projection.OrderReadModel")
        .collect();
    assert_eq!(projected.len(), 4, "{dump}");
    assert!(projected.iter().all(|s| s.links.len() == 1));

    // ---- the rejected command: ERROR with a description and one exception event ----------
    let ship_commands: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "command.ShipOrder")
        .collect();
    assert_eq!(ship_commands.len(), 2, "{dump}");
    let shipped = ship_commands
        .iter()
        .find(|s| s.str(attr::AGGREGATE_ID) == "order-1")
        .unwrap();
    assert_eq!(shipped.status_code, STATUS_UNSET);
    let rejected = ship_commands
        .iter()
        .find(|s| s.str(attr::AGGREGATE_ID) == "order-2")
        .unwrap();
    assert_eq!(rejected.status_code, STATUS_ERROR, "{dump}");
    assert_eq!(
        rejected.status_message,
        "command rejected: order was cancelled"
    );
    assert_eq!(rejected.events.len(), 1, "{:?}", rejected.events);
    let (event_name, event_attrs) = &rejected.events[0];
    assert_eq!(event_name, attr::SPAN_EVENT_EXCEPTION);
    assert!(
        matches!(event_attrs.get(attr::EXCEPTION_TYPE), Some(AttrValue::Str(t)) if t.ends_with("OrderError")),
        "{event_attrs:?}"
    );
    assert_eq!(
        event_attrs.get(attr::EXCEPTION_MESSAGE),
        Some(&AttrValue::Str(
            "command rejected: order was cancelled".into()
        ))
    );
    // A rejected command saves nothing: only the load under it.
    let mut under_rejected: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == rejected.trace_id && s.span_id != rejected.span_id)
        .map(|s| s.name.as_str())
        .collect();
    under_rejected.sort_unstable();
    assert_eq!(
        under_rejected,
        [
            "eventsource.event_store.load",
            "eventsource.repository.load"
        ],
        "{dump}"
    );

    // The metrics went to the collector as well, under the contract's names.
    let metrics: String = requests
        .iter()
        .filter(|r| r.path == "/v1/metrics")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    for name in [
        attr::METRIC_COMMAND_DURATION,
        attr::METRIC_COMMAND_TOTAL,
        attr::METRIC_EVENTS_PRODUCED,
        attr::METRIC_PROJECTION_LAG,
        attr::METRIC_BUS_MESSAGES_PUBLISHED,
        attr::METRIC_BUS_MESSAGES_CONSUMED,
        attr::METRIC_BUS_HANDLER_DURATION,
    ] {
        assert!(
            metrics.contains(&format!("\"{name}\"")),
            "no `{name}` in the exported metrics: {metrics}"
        );
    }
}

// ---- running the example -----------------------------------------------------------------

fn run_example(endpoint: &str) -> Output {
    let output = example_command(&example_binary("orders", &[]), endpoint)
        .output()
        .expect("the example runs");
    assert!(
        output.status.success(),
        "the example failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
