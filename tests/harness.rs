//! The span harness users' CI relies on: a capture sees every span of its test whatever
//! other threads of the binary do without one (`tracing` caches per callsite, for the whole
//! process, whether anyone wants it), and the lookups and assertions say what went wrong.

#[path = "../examples/domain/order.rs"]
mod domain;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use domain::{Order, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::testing::{SpanKind, Status, Value, assert_attribute, capture, given};

/// The spans one `PlaceOrder` makes, plus a `#[traced]` function's and a user's own.
const EXPECTED: [&str; 7] = [
    "command.PlaceOrder",
    "eventsource.repository.load",
    "eventsource.event_store.load",
    "eventsource.repository.save",
    "eventsource.event_store.append",
    "quote",
    "user.work",
];

#[traced(fields(order = %order_id))]
fn quote(order_id: &str) -> usize {
    order_id.len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// One order placed, a traced call, a user span: every callsite the test expects.
fn work(runtime: &tokio::runtime::Runtime, id: &str) {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    runtime
        .block_on(orders.execute(sample_order(id, "ada")))
        .unwrap();
    quote(id);
    tracing::info_span!("user.work").in_scope(|| {});
}

fn assert_all_captured(spans: &eventsource_runtime::testing::CapturedSpans, round: usize) {
    for name in EXPECTED {
        assert!(
            spans.find(name).is_some(),
            "round {round}: `{name}` missing; captured:\n{}",
            spans.tree()
        );
    }
}

/// The race of issue 11, made deterministic: a thread with no subscriber reaches every
/// callsite first (so `tracing` decides their interest with nobody listening), then the
/// test captures. Then the same with that thread running all along, 200 captures.
#[test]
fn a_capture_sees_every_span_whatever_threads_without_one_did_first() {
    std::thread::spawn(|| work(&runtime(), "o-0"))
        .join()
        .unwrap();
    let rt = runtime();
    {
        let capture = capture();
        work(&rt, "o-1");
        assert_all_captured(&capture.spans(), 0);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let rt = runtime();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                work(&rt, &format!("busy-{n}"));
                n += 1;
            }
        })
    };
    for round in 1..=200 {
        let capture = capture();
        work(&rt, &format!("o-{round}"));
        let spans = capture.spans();
        assert_all_captured(&spans, round);
        assert_eq!(
            spans.len(),
            EXPECTED.len(),
            "round {round}: only this thread's"
        );
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
}

#[test]
fn lookups_by_name_predicate_and_attribute() {
    let rt = runtime();
    let capture = capture();
    work(&rt, "o-1");
    work(&rt, "o-2");
    let spans = capture.spans();

    // Two of each: `get` would panic, `find`/`all` do not.
    assert_eq!(spans.all("command.PlaceOrder").len(), 2);
    assert!(spans.find("command.PlaceOrder").is_some());
    let clients = spans.find_all(|s| s.span_kind == SpanKind::Client);
    assert_eq!(clients.len(), 4, "load and append, twice");
    let second = spans.with_attribute("eventsource.aggregate.id", "o-2");
    assert!(second.iter().any(|s| s.name == "command.PlaceOrder"));
    assert!(second.iter().all(|s| s.status == Status::Unset));

    let quote = spans.with_attribute("order", "o-2");
    assert_eq!(quote.len(), 1);
    assert_attribute(quote[0], "order", "o-2");
    assert_attribute(
        spans.find("eventsource.repository.save").unwrap(),
        "eventsource.version",
        Value::I64(1),
    );
    spans.assert_no_span("eventsource.event_bus.publish");

    capture.clear();
    work(&rt, "o-3");
    let spans = capture.spans();
    spans.assert_descendant_of("eventsource.event_store.append", "command.PlaceOrder");
    assert!(
        std::panic::catch_unwind(|| spans.assert_descendant_of("quote", "command.PlaceOrder"))
            .is_err()
    );
}

#[test]
fn a_failed_assertion_names_the_span_and_lists_its_attributes() {
    let rt = runtime();
    let capture = capture();
    work(&rt, "o-1");
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    let failure = std::panic::catch_unwind(|| {
        assert_attribute(load, "eventsource.aggregate.id", "o-2");
    })
    .unwrap_err();
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("span `eventsource.repository.load`")
            && message.contains(r#"expected `eventsource.aggregate.id` = "o-2", found "o-1""#)
            && message.contains(r#"eventsource.aggregate.type = "Order""#)
            && message.contains("eventsource.version = 0 (i64)"),
        "{message}"
    );
    // A typed mismatch: the integer 1 is not the string "1".
    let save = spans.get("eventsource.repository.save");
    assert!(
        std::panic::catch_unwind(|| assert_attribute(save, "eventsource.version", "1")).is_err()
    );
}

#[test]
fn an_error_span_is_asserted_by_status_and_exception() {
    let rt = runtime();
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let shipped = rt.block_on(orders.execute(domain::ShipOrder {
        order_id: "o-1".into(),
        carrier: "dhl".into(),
    }));
    assert!(shipped.is_err());
    let spans = capture.spans();
    spans.assert_error("command.ShipOrder", "never placed");
    assert!(
        std::panic::catch_unwind(|| spans.assert_error("eventsource.repository.load", "x"))
            .is_err()
    );
}

/// `then_error` compares messages and `Debug`, so an error type without `PartialEq` works.
#[test]
fn then_error_needs_no_partial_eq() {
    #[derive(Debug, thiserror::Error)]
    #[error("order {0} is not placed")]
    struct NotPlaced(String);

    given::<Order>([])
        .when_fn(|_| Err::<Vec<domain::OrderEvent>, _>(NotPlaced("o-1".into())))
        .then_error(NotPlaced("o-1".into()));
}
