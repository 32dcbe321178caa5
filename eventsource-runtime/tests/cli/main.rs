//! The `eventsource` command line as users run it: the built binary, against a SQLite file
//! and a PostgreSQL schema seeded through the library, its output and exit codes read back,
//! and the store read back to see what it changed (nothing, on bad input).
//!
//! PostgreSQL comes from `DATABASE_URL`; without it those tests print `skipped: ...` and
//! pass, unless `EVENTSOURCE_REQUIRE_POSTGRES=1`.

mod parked_retry;
mod postgres;
mod rebuild;
mod retire;
mod sqlite;

use std::process::Command;

use eventsource_runtime::event::{Metadata, NewEvent, StreamId};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ParkedEvent, RunnerStop};
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use serde_json::{Value, json};

/// The trace ids of the seeded request's two services.
pub const TRACE_ORDERS: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const TRACE_SHIPPING: &str = "0af7651916cd43dd8448eb211c80319c";
pub const TRACE_URL: &str = "http://jaeger.test:16686/trace/{trace_id}";

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts the exit code, showing the output otherwise.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `eventsource` with `args`, none of the store variables of the test's environment.
pub fn eventsource<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(args)
        .env_remove("EVENTSOURCE_STORE")
        .env_remove("DATABASE_URL")
        .env_remove("EVENTSOURCE_SCHEMA")
        .env_remove("EVENTSOURCE_TRACE_URL")
        .output()
        .expect("the eventsource binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-01")
}

pub fn event(
    kind: &str,
    correlation: Option<&str>,
    causation: Option<&str>,
    trace: &str,
) -> NewEvent {
    let mut metadata = Metadata::new().with(Metadata::TRACEPARENT, traceparent(trace));
    if let Some(correlation) = correlation {
        metadata.insert(Metadata::CORRELATION_ID, correlation);
    }
    if let Some(causation) = causation {
        metadata.insert(Metadata::CAUSATION_ID, causation);
    }
    NewEvent::new(kind.to_owned(), 1, json!({ "kind": kind })).with_metadata(metadata)
}

/// Six events: request `req-1` placed and paid order o-1 (positions 1, 2), which asked
/// for shipment s-1 (3), in another service's trace; `req-2` placed and cancelled o-2
/// (4, 5); o-3 placed without a correlation (6). Then the projection `orders` handled up
/// to 2 and parked 1, and the relay handled everything.
pub async fn seed(store: &dyn EventStore, checkpoints: &dyn CheckpointStore) {
    let placed = event("OrderPlaced", Some("req-1"), Some("req-1"), TRACE_ORDERS);
    let paid_cause = placed.event_id.to_string();
    let paid = event("OrderPaid", Some("req-1"), Some(&paid_cause), TRACE_ORDERS);
    let shipment_cause = paid.event_id.to_string();
    let appends = [
        (StreamId::new("Order", "o-1"), vec![placed, paid]),
        (
            StreamId::new("Shipment", "s-1"),
            vec![event(
                "ShipmentRequested",
                Some("req-1"),
                Some(&shipment_cause),
                TRACE_SHIPPING,
            )],
        ),
        (
            StreamId::new("Order", "o-2"),
            vec![
                event("OrderPlaced", Some("req-2"), Some("req-2"), TRACE_ORDERS),
                event("OrderCancelled", Some("req-2"), Some("req-2"), TRACE_ORDERS),
            ],
        ),
        (
            StreamId::new("Order", "o-3"),
            vec![event("OrderPlaced", None, None, TRACE_ORDERS)],
        ),
    ];
    for (stream, events) in appends {
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
    checkpoints.save("orders", 2).await.unwrap();
    checkpoints
        .park("orders", &ParkedEvent::new(1, "metadata: invalid type"))
        .await
        .unwrap();
    checkpoints.save("eventsource.relay", 6).await.unwrap();
}

/// `target`'s arguments, then `args`.
pub fn joined(target: &[&str], args: &[&str]) -> Vec<String> {
    target
        .iter()
        .chain(args)
        .map(|arg| (*arg).to_owned())
        .collect()
}

/// The status row of `name`.
pub fn projection<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["projections"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no `{name}` in {status:#}"))
}

/// What `events --json` listed: each event's position.
pub fn positions(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

/// The checks both stores pass, on a store `seed` filled: status, events, the causation
/// tree, a reset, and bad input changing nothing. `store` is `--store`'s value, `extra`
/// more global arguments (`--schema`).
pub async fn common_checks(target: &[&str], checkpoints: &dyn CheckpointStore) {
    let with = |args: &[&str]| joined(target, args);

    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    assert_eq!(status["head"], 6, "{status:#}");
    let orders = projection(&status, "orders");
    assert_eq!(orders["kind"], "projection");
    assert_eq!(orders["checkpoint"], 2);
    assert_eq!(orders["lag"]["events"], 4);
    let age = orders["lag"]["oldest_age_seconds"]
        .as_f64()
        .expect("the waiting event's age");
    assert!((0.0..600.0).contains(&age), "{age}");
    assert_eq!(orders["parked"], 1);
    assert!(orders["lease"].is_null(), "nobody runs it: {orders:#}");
    let relay = projection(&status, "eventsource.relay");
    assert_eq!(
        (relay["kind"].as_str(), relay["lag"]["events"].as_u64()),
        (Some("relay"), Some(0))
    );
    let text = eventsource(&with(&["status"])).expect(0).stdout;
    assert!(text.contains("head 6"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("orders "))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["orders", "projection", "2", "4"], "{text}");
    assert!(orders["stopped"].is_null(), "{orders:#}");

    // A runner that stopped on an error: why, in JSON and under the table, until cleared.
    let stop = RunnerStop::new("handler `orders` failed 5 times on event 3: read model down");
    checkpoints.record_stop("orders", &stop).await.unwrap();
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let orders = projection(&status, "orders");
    assert_eq!(
        orders["stopped"]["error"],
        stop.error.as_str(),
        "{orders:#}"
    );
    assert_eq!(orders["checkpoint"], 2, "the checkpoint kept");
    let text = eventsource(&with(&["status"])).expect(0).stdout;
    let row = text.lines().find(|l| l.starts_with("orders ")).unwrap();
    assert!(row.ends_with("- (stopped)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("STOPPED orders at "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(&format!("Z: {}", stop.error)), "{line}");
    checkpoints.clear_stop("orders").await.unwrap();
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    assert!(projection(&status, "orders")["stopped"].is_null());

    // Events: a correlation's, exactly; a stream's; the log from a position.
    let listed = eventsource(&with(&[
        "events",
        "--correlation",
        "req-1",
        "--json",
        "--trace-url",
        TRACE_URL,
    ]))
    .expect(0)
    .json();
    assert_eq!(positions(&listed), [1, 2, 3]);
    assert_eq!(listed[2]["event_type"], "ShipmentRequested");
    assert_eq!(listed[2]["trace_id"], TRACE_SHIPPING);
    assert_eq!(
        listed[2]["trace_url"],
        format!("http://jaeger.test:16686/trace/{TRACE_SHIPPING}")
    );
    assert_eq!(listed[1]["causation_id"], listed[0]["event_id"]);
    assert_eq!(listed[0]["payload"]["kind"], "OrderPlaced");
    let stream = eventsource(&with(&["events", "--stream", "Order/o-2", "--json"]))
        .expect(0)
        .json();
    assert_eq!(positions(&stream), [4, 5]);
    let log = eventsource(&with(&["events", "--from", "5", "--limit", "1", "--json"]))
        .expect(0)
        .json();
    assert_eq!(positions(&log), [5]);
    let text = eventsource(&with(&["events", "--correlation", "req-2"]))
        .expect(0)
        .stdout;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with("#4  Order/o-2 v1  OrderPlaced  "),
        "{text}"
    );

    // The causation tree: text, JSON, Mermaid and DOT.
    let tree = eventsource(&with(&["causation", "req-1"])).expect(0).stdout;
    assert!(tree.contains("cause req-1"), "{tree}");
    let shipment = tree
        .lines()
        .position(|l| l.contains("ShipmentRequested"))
        .unwrap();
    let paid = tree.lines().position(|l| l.contains("OrderPaid")).unwrap();
    assert!(paid < shipment, "{tree}");
    let json_tree = eventsource(&with(&["causation", "req-1", "--json"]))
        .expect(0)
        .json();
    let placed = &json_tree["roots"][0]["children"][0];
    assert_eq!(placed["event_type"], "OrderPlaced");
    assert_eq!(
        placed["children"][0]["children"][0]["event_type"],
        "ShipmentRequested"
    );
    let args = [
        "causation",
        "req-1",
        "--format",
        "mermaid",
        "--trace-url",
        TRACE_URL,
    ];
    let mermaid = eventsource(&with(&args)).expect(0).stdout;
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert_eq!(mermaid.matches(" --> ").count(), 3, "{mermaid}");
    assert!(
        mermaid.contains(&format!(
            "\"http://jaeger.test:16686/trace/{TRACE_SHIPPING}\""
        )),
        "{mermaid}"
    );
    let dot = eventsource(&with(&["causation", "req-1", "--format", "dot"]))
        .expect(0)
        .stdout;
    assert!(dot.starts_with("digraph causation {"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 3, "{dot}");

    // Asked by an event's id: its correlation's tree, that event marked.
    let paid_id = listed[1]["event_id"].as_str().unwrap().to_owned();
    let tree = eventsource(&with(&["causation", &paid_id]))
        .expect(0)
        .stdout;
    assert!(tree.starts_with("correlation req-1\n"), "{tree}");
    let marked: Vec<&str> = tree.lines().filter(|l| l.ends_with(" ◀")).collect();
    assert_eq!(marked.len(), 1, "{tree}");
    assert!(marked[0].contains("OrderPaid Order/o-1 v2 @2"), "{tree}");
    let json_tree = eventsource(&with(&["causation", "--event", &paid_id, "--json"]))
        .expect(0)
        .json();
    assert_eq!(json_tree["marked"], paid_id.as_str(), "{json_tree:#}");
    assert_eq!(json_tree["correlation_id"], "req-1");
    let mermaid = eventsource(&with(&["causation", &paid_id, "--format", "mermaid"]))
        .expect(0)
        .stdout;
    assert_eq!(mermaid.matches("stroke-width:4px").count(), 1, "{mermaid}");
    let dot = eventsource(&with(&["causation", &paid_id, "--format", "dot"]))
        .expect(0)
        .stdout;
    let bold = dot
        .lines()
        .find(|l| l.contains("penwidth=3"))
        .unwrap_or_default();
    assert!(bold.contains("OrderPaid"), "{dot}");
    // An event without a correlation id: drawn alone.
    let lone = eventsource(&with(&["events", "--from", "6", "--json"]))
        .expect(0)
        .json();
    let lone_id = lone[0]["event_id"].as_str().unwrap().to_owned();
    let tree = eventsource(&with(&["causation", &lone_id]))
        .expect(0)
        .stdout;
    assert_eq!(
        tree.lines().filter(|l| l.ends_with(" ◀")).count(),
        1,
        "{tree}"
    );
    assert!(tree.contains("OrderPlaced Order/o-3 v1 @6"), "{tree}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let run = eventsource(&with(&["causation", &unknown])).expect(3);
    assert!(
        run.stderr
            .contains("no event has the id or the correlation id"),
        "{}",
        run.stderr
    );
    eventsource(&with(&["causation", "--event", "req-1"])).expect(2);

    // Parked events.
    let parked = eventsource(&with(&["parked", "list", "orders", "--json"]))
        .expect(0)
        .json();
    assert_eq!(parked[0]["position"], 1, "{parked:#}");
    assert_eq!(parked[0]["retry_requested"], false, "{parked:#}");
    // A retry asked (no runner runs here to honour it): listed as asked.
    let asked = eventsource(&with(&["parked", "retry", "orders", "--json"]))
        .expect(0)
        .json();
    assert_eq!(asked["retry_requested"], json!([1]), "{asked:#}");
    assert_eq!(checkpoints.retry_requests("orders").await.unwrap(), [1]);
    let parked = eventsource(&with(&["parked", "list", "orders"]))
        .expect(0)
        .stdout;
    assert!(
        parked.starts_with("POSITION  PARKED AT             RETRY      ERROR\n"),
        "{parked}"
    );
    assert!(
        parked.contains("  requested  metadata: invalid type"),
        "{parked}"
    );
    eventsource(&with(&["parked", "retry", "orders", "--position", "2"])).expect(3);
    eventsource(&with(&["parked", "skip", "orders", "--position", "4"])).expect(3);
    eventsource(&with(&["parked", "skip", "orders", "--position", "1"])).expect(0);
    assert!(checkpoints.parked("orders").await.unwrap().is_empty());

    // A reset, then bad input: the documented code, a line saying why, nothing changed.
    let reset = eventsource(&with(&["projection", "reset", "orders", "--to", "5"])).expect(0);
    assert_eq!(reset.stdout, "orders: checkpoint 2 -> 5\n");
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5);
    for (args, code, says) in [
        (
            &["projection", "reset", "orders", "--to", "7"][..],
            2,
            "past the store's head (6)",
        ),
        (
            &["projection", "reset", "nope", "--to", "0"],
            3,
            "no projection `nope`",
        ),
        (
            &["projection", "reset", "orders", "--to", "x"],
            2,
            "invalid value 'x'",
        ),
        (
            &["events", "--stream", "Order"],
            2,
            "malformed stream `Order`",
        ),
        (&["events"], 2, "give --stream"),
        (
            &["events", "--from", "1", "--limit", "0"],
            2,
            "invalid value '0'",
        ),
        (
            &["causation", "req-404"],
            3,
            "no event has the correlation id `req-404`",
        ),
        (&["parked", "list", "nope"], 3, "no projection `nope`"),
        (&["frobnicate"], 2, "unrecognized subcommand"),
    ] {
        let run = eventsource(&with(args)).expect(code);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5, "unchanged");
}
