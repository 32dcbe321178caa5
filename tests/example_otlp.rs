//! The real `orders` example, run as a child process exporting OTLP over HTTP/JSON to a
//! collector this test runs on 127.0.0.1: what a user sees in Jaeger or Tempo is the
//! telemetry contract's trace shape, with the right OTLP value types.
//!
//! The example binary is (re)built with `cargo build --example orders` (a no-op when it is
//! up to date; `cargo test --test example_otlp` does not build examples by itself) and run
//! from `target/<profile>/examples/`, next to this test's executable.

#[path = "common/otlp_collector.rs"]
mod otlp_collector;

use otlp_collector::{Request, collector};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eventsource_runtime::telemetry::attributes as attr;
use serde_json::Value as Json;

// OTLP enums, as numbers (`SpanKind`, `StatusCode`).
const KIND_INTERNAL: i64 = 1;
const KIND_CLIENT: i64 = 3;
const KIND_PRODUCER: i64 = 4;
const KIND_CONSUMER: i64 = 5;
const STATUS_UNSET: i64 = 0;
const STATUS_ERROR: i64 = 2;

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
    assert_eq!(publish.str(attr::MESSAGING_OPERATION_TYPE), "publish");
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

/// `target/<profile>/examples/orders`, built (or found up to date) by cargo.
fn example_binary() -> PathBuf {
    // The test runs as target/<profile>/deps/example_otlp-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let binary = profile_dir
        .join("examples")
        .join(format!("orders{}", std::env::consts::EXE_SUFFIX));
    let build = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "orders", "--profile"])
        .arg(&profile)
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success() || binary.exists(),
        "cargo build --example orders failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    if !build.status.success() {
        eprintln!(
            "cargo build --example orders failed; running the binary already built:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    assert!(binary.exists(), "no example at {}", binary.display());
    binary
}

fn run_example(endpoint: &str) -> Output {
    let mut command = Command::new(example_binary());
    for (key, _) in std::env::vars() {
        // `EVENTSOURCE_*`: the process switch, and the store (in memory by default).
        if key.starts_with("OTEL_")
            || key.starts_with("EVENTSOURCE_")
            || key == "RUST_LOG"
            || key == "NO_COLOR"
        {
            command.env_remove(key);
        }
    }
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    let output = command.output().expect("the example runs");
    assert!(
        output.status.success(),
        "the example failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---- decoding OTLP/JSON --------------------------------------------------------------------

/// An attribute value, by its OTLP `AnyValue` variant.
#[derive(Debug, Clone, PartialEq)]
enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    StrArray(Vec<String>),
    Other(Json),
}

#[derive(Debug)]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i64,
    start: u128,
    attributes: BTreeMap<String, AttrValue>,
    events: Vec<(String, BTreeMap<String, AttrValue>)>,
    links: Vec<(String, String)>,
    status_code: i64,
    status_message: String,
}

impl Span {
    #[track_caller]
    fn str(&self, key: &str) -> &str {
        match self.attributes.get(key) {
            Some(AttrValue::Str(s)) => s,
            other => panic!("`{}`.{key} is not a stringValue: {other:?}", self.name),
        }
    }

    #[track_caller]
    fn int(&self, key: &str) -> i64 {
        match self.attributes.get(key) {
            Some(AttrValue::Int(i)) => *i,
            other => panic!("`{}`.{key} is not an intValue: {other:?}", self.name),
        }
    }
}

fn array(json: &Json) -> &[Json] {
    json.as_array().map_or(&[], Vec::as_slice)
}

fn text(json: &Json) -> String {
    json.as_str().unwrap_or_default().to_owned()
}

/// An OTLP/JSON 64-bit integer: a number, or (proto3 JSON) a string of digits.
fn integer(json: &Json) -> Option<i128> {
    json.as_i64()
        .map(i128::from)
        .or_else(|| json.as_u64().map(i128::from))
        .or_else(|| json.as_str().and_then(|s| s.parse().ok()))
}

/// An enum: a number, or its proto name.
fn enumeration(json: &Json, names: &[&str]) -> i64 {
    if let Some(n) = json.as_i64() {
        return n;
    }
    let name = json.as_str().unwrap_or_default();
    names
        .iter()
        .position(|n| *n == name)
        .map_or(-1, |i| i as i64)
}

fn any_value(json: &Json) -> AttrValue {
    if let Some(s) = json.get("stringValue") {
        AttrValue::Str(text(s))
    } else if let Some(i) = json.get("intValue") {
        AttrValue::Int(integer(i).and_then(|i| i64::try_from(i).ok()).unwrap())
    } else if let Some(d) = json.get("doubleValue") {
        AttrValue::Double(d.as_f64().unwrap())
    } else if let Some(b) = json.get("boolValue") {
        AttrValue::Bool(b.as_bool().unwrap())
    } else if let Some(values) = json.get("arrayValue") {
        let values = array(&values["values"]);
        let strings: Vec<String> = values
            .iter()
            .filter_map(|v| v.get("stringValue").map(text))
            .collect();
        if strings.len() == values.len() {
            AttrValue::StrArray(strings)
        } else {
            AttrValue::Other(json.clone())
        }
    } else {
        AttrValue::Other(json.clone())
    }
}

fn attributes(json: &Json) -> BTreeMap<String, AttrValue> {
    array(json)
        .iter()
        .map(|kv| (text(&kv["key"]), any_value(&kv["value"])))
        .collect()
}

fn decode(bodies: &[Json]) -> Vec<Span> {
    const KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let mut spans = Vec::new();
    for body in bodies {
        for resource_spans in array(&body["resourceSpans"]) {
            for scope_spans in array(&resource_spans["scopeSpans"]) {
                for span in array(&scope_spans["spans"]) {
                    let status = &span["status"];
                    spans.push(Span {
                        trace_id: text(&span["traceId"]),
                        span_id: text(&span["spanId"]),
                        parent_span_id: text(&span["parentSpanId"]),
                        name: text(&span["name"]),
                        kind: enumeration(&span["kind"], &KINDS),
                        start: integer(&span["startTimeUnixNano"]).unwrap_or(0) as u128,
                        attributes: attributes(&span["attributes"]),
                        events: array(&span["events"])
                            .iter()
                            .map(|e| (text(&e["name"]), attributes(&e["attributes"])))
                            .collect(),
                        links: array(&span["links"])
                            .iter()
                            .map(|l| (text(&l["traceId"]), text(&l["spanId"])))
                            .collect(),
                        status_code: if status.get("code").is_some() {
                            enumeration(&status["code"], &CODES)
                        } else {
                            STATUS_UNSET
                        },
                        status_message: text(&status["message"]),
                    });
                }
            }
        }
    }
    spans
}

/// The spans as indented trees, for failure messages.
fn tree(spans: &[Span]) -> String {
    fn write(out: &mut String, spans: &[Span], span: &Span, depth: usize) {
        out.push_str(&format!(
            "{:indent$}{} kind={} status={}{}\n",
            "",
            span.name,
            span.kind,
            span.status_code,
            if span.links.is_empty() {
                ""
            } else {
                " (linked)"
            },
            indent = depth * 2
        ));
        let mut children: Vec<&Span> = spans
            .iter()
            .filter(|c| c.parent_span_id == span.span_id && c.trace_id == span.trace_id)
            .collect();
        children.sort_by_key(|c| c.start);
        for child in children {
            write(out, spans, child, depth + 1);
        }
    }
    let mut roots: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            !spans
                .iter()
                .any(|p| p.span_id == s.parent_span_id && p.trace_id == s.trace_id)
        })
        .collect();
    roots.sort_by_key(|s| s.start);
    let mut out = String::new();
    for root in roots {
        write(&mut out, spans, root, 0);
    }
    out
}
