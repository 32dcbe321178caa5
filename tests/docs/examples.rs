//! The seed examples run as child processes, as a user runs them: `cart` (seed 002) and
//! `cqrs` (seed 001) export over OTLP/HTTP JSON to a collector on 127.0.0.1, and the
//! traces, log lines and metrics they send are the ones their docs describe. `cqrs` also
//! runs without a collector, printing its metrics summary. `schema_evolution` reads events
//! older code stored, and its loads say on their spans what they upcast. `scale_out` splits
//! a projection over three workers and stops one half way.

use crate::otlp;
use crate::otlp_collector;

use std::process::Output;

use eventsource_runtime::telemetry::attributes as attr;
use otlp::{
    AttrValue, KIND_CONSUMER, KIND_INTERNAL, STATUS_ERROR, Span, array, decode, example_binary,
    example_command, tree,
};
use otlp_collector::collector;
use serde_json::Value as Json;

/// Runs example `name` against a fresh collector: its output, its spans, and the bodies of
/// its metric exports.
fn run(name: &str) -> (Output, Vec<Span>, Vec<Json>) {
    let (endpoint, requests) = collector();
    let output = example_command(&example_binary(name, &[]), &endpoint)
        .output()
        .expect("the example runs");
    assert!(
        output.status.success(),
        "the {name} example failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = requests.lock().unwrap().clone();
    let bodies = |path: &str| -> Vec<Json> {
        requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| serde_json::from_slice(&r.body).expect("an OTLP/JSON body"))
            .collect()
    };
    let spans = decode(&bodies("/v1/traces"));
    (output, spans, bodies("/v1/metrics"))
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn parent<'a>(spans: &'a [Span], span: &Span) -> Option<&'a Span> {
    spans.iter().find(|s| s.span_id == span.parent_span_id)
}

#[test]
fn the_cart_example_traces_its_services_projection_and_logs() {
    let (output, spans, _) = run("cart");
    let dump = tree(&spans);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cart-1 again -> rejected: the cart was checked out already"),
        "{stdout}"
    );

    // The service spans: static and dynamic attributes, the runtime's spans under them.
    let adds = named(&spans, "cart_service.add_item");
    assert_eq!(adds.len(), 2, "only the traced instance's calls\n{dump}");
    for add in &adds {
        assert_eq!(add.kind, KIND_INTERNAL);
        assert_eq!(add.str("service"), "cart");
        assert_eq!(add.str("cart.id"), "cart-1");
        assert!(matches!(
            add.attributes.get("quantity"),
            Some(AttrValue::Int(_))
        ));
    }
    for command in named(&spans, "command.AddItem") {
        let parent = parent(&spans, command).map(|p| p.name.as_str());
        match command.str(attr::AGGREGATE_ID) {
            "cart-1" => assert_eq!(parent, Some("cart_service.add_item"), "{dump}"),
            // The importer's own spans are off: its command is a root.
            _ => assert_eq!(parent, None, "{dump}"),
        }
    }
    let email = named(&spans, "notification_service.send_email");
    assert_eq!(email.len(), 1, "{dump}");
    assert_eq!(email[0].str("channel"), "email");
    let checkout = parent(&spans, email[0]).expect("a parent");
    assert_eq!(checkout.name, "cart_service.check_out");

    // The refused checkout: both spans ERROR, with the class of error.
    let checkouts = named(&spans, "cart_service.check_out");
    let refused = checkouts
        .iter()
        .find(|s| s.status_code == STATUS_ERROR)
        .unwrap_or_else(|| panic!("a failed checkout\n{dump}"));
    let command = spans
        .iter()
        .find(|s| s.parent_span_id == refused.span_id)
        .expect("its command span");
    assert_eq!(command.status_code, STATUS_ERROR);
    assert!(
        command.str(attr::ERROR_TYPE).ends_with("CartError"),
        "{dump}"
    );

    // The projection's spans are on: roots linked to the appends.
    let projections = named(&spans, "projection.CartSummary");
    assert_eq!(
        projections.len(),
        4,
        "three events of cart-1, one of cart-2\n{dump}"
    );
    for projection in projections {
        assert_eq!(projection.kind, KIND_CONSUMER);
        assert!(projection.parent_span_id.is_empty());
        let (trace, span) = &projection.links[0];
        let linked = spans
            .iter()
            .find(|s| &s.trace_id == trace && &s.span_id == span);
        assert_eq!(
            linked.map(|s| s.name.as_str()),
            Some(attr::SPAN_STORE_APPEND),
            "{dump}"
        );
    }

    // Two services, one correlation id: the fulfilment service's handler ran its command
    // inside the checkout's lineage, so its spans carry the checkout's correlation id.
    let checkout = named(&spans, "command.CheckOut")
        .into_iter()
        .find(|s| s.status_code != STATUS_ERROR)
        .unwrap_or_else(|| panic!("the checkout's command span\n{dump}"));
    let correlation_id = checkout.str(attr::CORRELATION_ID);
    assert!(
        stdout.contains(&format!(
            "cart-1 checked out (correlation id {correlation_id})"
        )),
        "{stdout}\n{dump}"
    );
    let shipment = named(&spans, "command.PrepareShipment");
    assert_eq!(shipment.len(), 1, "{dump}");
    assert_eq!(
        shipment[0].str(attr::CORRELATION_ID),
        correlation_id,
        "{dump}"
    );
    let fulfilment = parent(&spans, shipment[0]).expect("the fulfilment service's span");
    assert_eq!(fulfilment.name, "fulfilment_service.prepare_shipment");
    assert_eq!(fulfilment.str("service"), "fulfilment");
    for name in [
        attr::SPAN_BUS_PUBLISH,
        attr::SPAN_BUS_CONSUME,
        attr::SPAN_BUS_HANDLE,
    ] {
        let carrying: Vec<&Span> = named(&spans, name)
            .into_iter()
            .filter(|s| {
                matches!(s.attributes.get(attr::CORRELATION_ID),
                    Some(AttrValue::Str(id)) if id == correlation_id)
            })
            .collect();
        assert!(
            !carrying.is_empty(),
            "no {name} span with the checkout's id\n{dump}"
        );
    }
    // The checkout's causation tree, across both services' stores, with the trace id.
    let tree = stdout
        .split("causation tree of the checkout:")
        .nth(1)
        .unwrap_or_else(|| panic!("a causation tree\n{stdout}"));
    let trace = &checkout.trace_id;
    assert!(
        tree.contains(&format!("correlation {correlation_id}")),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("└─ cause {correlation_id}")),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("   └─ CheckedOut Cart/cart-1 v4 @4 trace {trace}")),
        "{tree}"
    );
    assert!(
        tree.contains(&format!(
            "      └─ ShipmentPrepared Shipment/cart-1 v1 @1 trace {trace}"
        )),
        "{tree}"
    );

    // Log lines inside the spans carry their trace id.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let added = stderr
        .lines()
        .find(|l| l.contains("item added") && l.contains("cart-1"))
        .unwrap_or_else(|| panic!("an `item added` log line\n{stderr}"));
    assert!(
        adds.iter()
            .any(|a| added.contains(&format!("trace_id={}", a.trace_id))),
        "{added}\n{dump}"
    );
}

#[test]
fn the_cqrs_example_separates_the_write_and_read_paths() {
    let (output, spans, metrics) = run("cqrs");
    let dump = tree(&spans);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("no handler for RevenueByCustomer"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("metrics at exit"),
        "a collector gets the metrics"
    );

    for command in spans.iter().filter(|s| s.name.starts_with("command.")) {
        assert_eq!(command.str(attr::CQRS_SIDE), "write", "{dump}");
    }
    let queries: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("query."))
        .collect();
    assert_eq!(queries.len(), 4, "{dump}");
    for query in &queries {
        assert_eq!(query.str(attr::CQRS_SIDE), "read", "{dump}");
    }
    let unhandled = named(&spans, "query.RevenueByCustomer");
    assert_eq!(unhandled.len(), 1, "{dump}");
    assert_eq!(unhandled[0].status_code, STATUS_ERROR);
    assert!(unhandled[0].status_message.contains("no handler"), "{dump}");
    assert_eq!(
        unhandled[0]
            .events
            .iter()
            .filter(|(name, _)| name == attr::SPAN_EVENT_EXCEPTION)
            .count(),
        1
    );
    let open = named(&spans, "query.OpenOrders");
    assert_eq!(open[0].int(attr::QUERY_RESULT_COUNT), 1);

    let metrics = serde_json::to_string(&metrics).unwrap();
    for name in [
        attr::METRIC_COMMAND_TOTAL,
        attr::METRIC_QUERY_TOTAL,
        attr::METRIC_QUERY_DURATION,
        attr::METRIC_PROJECTION_LAG,
    ] {
        assert!(
            metrics.contains(&format!("\"{name}\"")),
            "no {name}: {metrics}"
        );
    }
}

#[test]
fn without_a_collector_the_cqrs_example_prints_its_metrics_at_exit() {
    let mut command = example_command(&example_binary("cqrs", &[]), "unused");
    command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    command.env_remove("OTEL_EXPORTER_OTLP_PROTOCOL");
    let output = command.output().expect("the example runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .split("metrics at exit:")
        .nth(1)
        .unwrap_or_else(|| panic!("a summary\n{stdout}"));
    for line in [
        "cqrs.command.total{command.status=success, command.type=PlaceOrder} = 2",
        "cqrs.query.total{query.status=error, query.type=RevenueByCustomer} = 1",
        "cqrs.query.result_size{query.type=OpenOrders} count=1 sum=1",
    ] {
        assert!(summary.contains(line), "no `{line}` in\n{summary}");
    }
    assert!(summary.contains(
        "cqrs.projection.lag{event.type=OrderPlaced, projection.name=OrderReadModel} count=2"
    ));
}

#[test]
fn the_schema_evolution_example_reads_old_events_as_todays() {
    let (output, spans, metrics) = run("schema_evolution");
    let dump = tree(&spans);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in [
        // The start-time check names the missing step.
        "a chain with a gap is refused: the upcasters of `AddressChanged` skip version 2",
        // Split, rename and both steps applied on load.
        "loaded c-1 at version 4: Ada lives at 742 Evergreen Terrace, Springfield, US (3 moves)",
        "moved: c-1 at version 5 lives at 221B Baker St, London, GB (4 moves)",
        // The runner hands the projection today's events only, the split's two included.
        "AddressHistory caught up to position 5:",
        "#1 c-1 registered: Ada",
        "#1 c-1 address (v3): 1 Main St, Springfield, US",
        "#2 c-1 address (v3): 12 Elm St, Shelbyville, US",
        "#3 c-1 address (v3): 7 Oak Ave, Capital City, US",
        "#5 c-1 address (v3): 221B Baker St, London, GB",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    // The health report at the end: the runner caught up, nothing waiting, nothing parked.
    assert!(stdout.contains("\nhealth: ready\n"), "{stdout}");
    let row = stdout
        .lines()
        .find(|line| line.starts_with("projection ") && line.contains("AddressHistory"))
        .unwrap_or_else(|| panic!("no AddressHistory row in\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "projection",
            "AddressHistory",
            "caught_up",
            "not_held",
            "0",
            "0.000",
            "0"
        ],
        "{stdout}"
    );

    // The loads that read the old events say so on their span; the one that read only
    // today's event (from the cache) says nothing.
    let loads = named(&spans, attr::SPAN_REPOSITORY_LOAD);
    assert_eq!(loads.len(), 3, "{dump}");
    let upcasting: Vec<&&Span> = loads
        .iter()
        .filter(|s| s.attributes.contains_key(attr::UPCAST_COUNT))
        .collect();
    assert_eq!(upcasting.len(), 2, "{dump}");
    for load in upcasting {
        assert_eq!(load.int(attr::UPCAST_COUNT), 4, "{dump}");
        assert_eq!(load.int(attr::EVENTS_REPLAYED), 4, "{dump}");
        // An int array: `{"arrayValue": {"values": [{"intValue": ..}, ..]}}`.
        let Some(AttrValue::Other(versions)) = load.attributes.get(attr::UPCAST_FROM_VERSIONS)
        else {
            panic!("no int array {}\n{dump}", attr::UPCAST_FROM_VERSIONS)
        };
        let versions: Vec<String> = array(&versions["arrayValue"]["values"])
            .iter()
            .map(|v| v["intValue"].to_string().trim_matches('"').to_owned())
            .collect();
        assert_eq!(versions, ["1", "2"], "{dump}");
    }
    let command = named(&spans, "command.MoveCustomer");
    assert_eq!(command.len(), 1, "{dump}");

    let metrics = serde_json::to_string(&metrics).unwrap();
    assert!(
        metrics.contains(&format!("\"{}\"", attr::METRIC_EVENTS_UPCAST)),
        "no {}: {metrics}",
        attr::METRIC_EVENTS_UPCAST
    );
}

/// The README's first command with a store that cannot be used: one line for a person (the
/// variable, the URL with its password as `***`, what failed and where, each cause once),
/// exit status 1, and no other line: no `Error: Unavailable(..)` Debug dump, no warning
/// that the telemetry guard was dropped right after `init`.
#[test]
fn an_example_that_fails_says_why_in_one_line() {
    let binary = example_binary("orders", &[]);
    let mut command = std::process::Command::new(&binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") || key.starts_with("EVENTSOURCE_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let output = command
        .env(
            "EVENTSOURCE_STORE",
            "postgres://orders:pw-4711@127.0.0.1:1/orders",
        )
        .output()
        .expect("the example runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(
            "error: EVENTSOURCE_STORE=postgres://orders:***@127.0.0.1:1/orders: event store \
             unavailable: cannot connect to PostgreSQL at 127.0.0.1:1: error communicating \
             with database: Connection refused"
        ),
        "{stderr}"
    );
}

#[test]
fn the_scale_out_example_shares_the_segments_and_hands_them_over() {
    let (output, _spans, metrics) = run("scale_out");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("seeded 200 events"), "{stdout}");
    // The three workers each held segments, and the one stopped half way held none after.
    for worker in ["worker-0", "worker-1", "worker-2"] {
        let held = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{worker} holding [")))
            .any(|l| !l.ends_with("[]"));
        assert!(held, "{worker} held segments:\n{stdout}");
    }
    assert!(stdout.contains("stopping worker-0 half way"), "{stdout}");
    assert!(
        stdout.contains("every one of the 200 events handled once, each order's in version order"),
        "{stdout}"
    );
    let changes = metrics.iter().any(|body| {
        body.to_string()
            .contains("eventsource.projection.segment.changes")
    });
    assert!(changes, "the changes of hands counted");
}

/// The operator example leaves what the operating guide shows: `revenue` five orders
/// behind with the event from newer code parked, `shipments` in two segments caught up,
/// and, with RabbitMQ, a dead letter in `operator-billing`.
#[tokio::test]
async fn the_operator_example_leaves_something_for_each_view() {
    use eventsource_runtime::operate::{self, Stores};
    use eventsource_runtime::sqlite::SqliteEventStore;

    let dir = std::env::temp_dir().join(format!(
        "eventsource-operator-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let file = dir.join("operator.db");
    let amqp = eventsource_test_support::servers::Server::RabbitMq
        .address("docs::examples::the_operator_example")
        .filter(|_| cfg!(feature = "rabbitmq"));
    let features: &[&str] = if amqp.is_some() { &["rabbitmq"] } else { &[] };
    let (endpoint, _requests) = collector();
    let mut command = example_command(&example_binary("operator", features), &endpoint);
    command.args(["--store", &format!("sqlite:{}", file.display())]);
    if let Some(url) = &amqp {
        command.args(["--broker", url]);
    }
    let output = command.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the operator example failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("next: cargo run"), "{stdout}");

    let store = SqliteEventStore::connect(&format!("sqlite:{}", file.display()))
        .await
        .unwrap();
    let report = operate::status(&Stores::sqlite(&store)).await.unwrap();
    let named = |name: &str| {
        (report.projections.iter())
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no `{name}` in {:#?}", report.projections))
    };
    let revenue = named("revenue");
    assert_eq!((revenue.lag.events, revenue.parked), (5, 1), "{revenue:#?}");
    let shipments = named("shipments");
    assert_eq!(shipments.kind, "split", "{shipments:#?}");
    assert_eq!(shipments.segments.len(), 2, "{shipments:#?}");
    assert_eq!(shipments.lag.events, 0, "{shipments:#?}");
    let refunds = named("refunds");
    let stop = refunds.stopped.as_ref().expect("why `refunds` stopped");
    assert!(
        stop.error
            .ends_with("the refund service is down (connection refused)"),
        "{refunds:#?}"
    );
    if amqp.is_some() {
        assert!(
            stdout.contains("one more dead letter in `operator-billing`"),
            "{stdout}"
        );
    }
    // A shipment was caused by its order's placement, in its request: a tree to draw.
    use eventsource_runtime::event::StreamId;
    use eventsource_runtime::store::EventStore as _;
    let order = store.load(&StreamId::new("Order", "o-1"), 0).await.unwrap();
    let (placed, shipped) = (&order[0], &order[1]);
    assert_eq!(shipped.event_type, "OrderShipped");
    assert_eq!(
        shipped.metadata.causation_id(),
        Some(placed.event_id.to_string().as_str())
    );
    assert_eq!(
        shipped.metadata.correlation_id(),
        placed.metadata.correlation_id()
    );
    // The console command it and the guide give starts: its admin token is long enough.
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/operating.md"),
    )
    .unwrap();
    for text in [stdout.as_ref(), guide.as_str()] {
        for token in text.split("--admin-token ").skip(1) {
            let token = token.split_whitespace().next().unwrap_or_default();
            let token = token.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '-');
            // A shell variable is the reader's own.
            if !token.contains('$') {
                assert!(token.len() >= 8, "the console refuses `{token}`: too short");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
