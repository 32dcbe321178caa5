//! The instance switch: no span and no fields when off, for sync and async methods.

use super::*;

#[test]
fn the_instance_switch_skips_the_span_and_its_fields() {
    let capture = capture();
    let calls = AtomicUsize::new(0);
    let off = OrderService { tracing: false };
    assert_eq!(off.counted(&calls), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a field was evaluated");
    assert!(capture.spans().is_empty());

    let on = OrderService { tracing: true };
    assert_eq!(on.counted(&calls), 1);
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("OrderService.counted"), "calls"),
        Some(&Value::I64(1))
    );
}

#[tokio::test]
async fn the_instance_switch_also_covers_async_methods() {
    let capture = capture();
    let off = OrderService { tracing: false };
    assert_eq!(
        off.place_order(OrderId(1), "c", vec!["x".into()]).await,
        Ok(1)
    );
    assert!(capture.spans().is_empty());
}
