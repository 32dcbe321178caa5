//! `#[traced]` under the process-wide switch (`telemetry::set_enabled`). The switch is
//! global, so this file holds a single test.

use std::sync::atomic::{AtomicUsize, Ordering};

use eventsource_runtime::telemetry;
use eventsource_runtime::testing::{attribute, capture};
use eventsource_runtime::traced;
use opentelemetry::Value;

fn count(calls: &AtomicUsize) -> usize {
    calls.fetch_add(1, Ordering::SeqCst) + 1
}

#[traced(fields(calls = count(calls)))]
fn sync_work(calls: &AtomicUsize) -> usize {
    calls.load(Ordering::SeqCst)
}

#[traced(fields(calls = count(calls)), enabled = count(calls) > 0)]
async fn async_work(calls: &AtomicUsize) -> usize {
    tokio::task::yield_now().await;
    calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn the_process_switch_skips_spans_fields_and_the_enabled_expression() {
    let capture = capture();
    let calls = AtomicUsize::new(0);

    telemetry::set_enabled(false);
    assert_eq!(sync_work(&calls), 0);
    assert_eq!(async_work(&calls).await, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "an expression was evaluated"
    );
    assert!(capture.spans().is_empty(), "{}", capture.spans().tree());

    telemetry::set_enabled(true);
    assert_eq!(sync_work(&calls), 1);
    // `enabled` ran (2), then the field (3).
    assert_eq!(async_work(&calls).await, 3);
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("sync_work"), "calls"),
        Some(&Value::I64(1))
    );
    assert_eq!(
        attribute(spans.get("async_work"), "calls"),
        Some(&Value::I64(3))
    );
    telemetry::toggles::reset();
}
