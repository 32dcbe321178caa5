//! Names, kinds, static attributes, fields and return values, on plain and generic functions.

use super::*;

#[test]
fn names_default_to_the_function_or_type_and_method() {
    let capture = capture();
    assert_eq!(compute_total(&[1, 2, 3]), 6);
    assert_eq!(OrderService { tracing: true }.ping(), "pong");
    assert!(EmailNotifier.notify("ada@example.com"));
    assert_eq!(send_email("ada"), 3);
    let spans = capture.spans();
    let total = spans.get("compute_total");
    assert_eq!(kind(total), SpanKind::Internal);
    assert_eq!(total.status, Status::Unset);
    let _ = spans.get("OrderService.ping");
    let notify = spans.get("EmailNotifier.notify");
    assert_eq!(attribute(notify, "channel"), Some(&Value::from("email")));
    assert_eq!(
        attribute(notify, "recipient"),
        Some(&Value::from("ada@example.com"))
    );
    let email = spans.get("notification_service.send_email");
    assert_eq!(kind(email), SpanKind::Client);
    assert_eq!(spans.len(), 4, "{}", spans.tree());
}

#[test]
fn static_attributes_are_recorded_with_their_types() {
    let capture = capture();
    send_sms();
    let spans = capture.spans();
    let sms = spans.get("send_sms");
    assert_eq!(attribute(sms, "channel"), Some(&Value::from("sms")));
    assert_eq!(attribute(sms, "retries"), Some(&Value::I64(3)));
    assert_eq!(attribute(sms, "ratio"), Some(&Value::F64(0.5)));
    assert_eq!(attribute(sms, "urgent"), Some(&Value::Bool(true)));
    assert_eq!(attribute(sms, "offset"), Some(&Value::I64(-2)));
    assert_eq!(attribute(sms, CHANNEL_KEY), Some(&Value::from("sms")));
}

#[test]
fn integer_fields_arrive_as_i64() {
    let capture = capture();
    integers(1, 2, 3, u64::MAX, 5, -6, "ada".into(), true);
    let spans = capture.spans();
    let span = spans.get("integers");
    // Beyond i64: its decimal string, never a wrong number.
    assert_eq!(
        attribute(span, "d"),
        Some(&Value::from("18446744073709551615"))
    );
    capture.clear();
    integers(1, 2, 3, 4, 5, -6, "ada".into(), true);
    let spans = capture.spans();
    let span = spans.get("integers");
    assert_eq!(attribute(span, "d"), Some(&Value::I64(4)));
    assert_eq!(attribute(span, "a"), Some(&Value::I64(1)));
    assert_eq!(attribute(span, "b"), Some(&Value::I64(2)));
    assert_eq!(attribute(span, "c"), Some(&Value::I64(3)));
    assert_eq!(attribute(span, "e"), Some(&Value::I64(5)));
    assert_eq!(attribute(span, "f"), Some(&Value::I64(-6)));
    assert_eq!(attribute(span, "name"), Some(&Value::from("ada")));
    assert_eq!(attribute(span, "flag"), Some(&Value::Bool(true)));
}

#[tokio::test]
async fn dynamic_fields_and_set_attribute() {
    let capture = capture();
    let service = OrderService { tracing: true };
    let placed = service
        .place_order(OrderId(7), "c-1", vec!["book".into(), "pen".into()])
        .await;
    assert_eq!(placed, Ok(2));
    let spans = capture.spans();
    let span = spans.get("OrderService.place_order");
    assert_eq!(attribute(span, "customer.id"), Some(&Value::from("c-1")));
    assert_eq!(attribute(span, "items.count"), Some(&Value::I64(2)));
    assert_eq!(attribute(span, "order"), Some(&Value::from("ord-7")));
    assert_eq!(
        attribute(span, "first"),
        Some(&Value::from("Some(\"book\")"))
    );
    assert_eq!(
        attribute(span, "order.priority"),
        Some(&Value::from("express"))
    );
    assert_eq!(span.status, Status::Unset);
    // Arguments are not recorded unless named.
    assert_eq!(attribute(span, "items"), None);
    assert_eq!(attribute(span, "order_id"), None);
}

#[test]
fn generic_functions_and_impl_trait() {
    let capture = capture();
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest(&[1.5, 0.5]), Some(1.5));
    assert_eq!(evens("evens", 7).collect::<Vec<_>>(), [0, 2, 4, 6]);
    let spans = capture.spans();
    assert_eq!(spans.all("largest").len(), 2);
    let mut counts: Vec<_> = spans
        .all("largest")
        .iter()
        .map(|s| attribute(s, "count").cloned())
        .collect();
    counts.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(counts, [Some(Value::I64(2)), Some(Value::I64(3))]);
    assert_eq!(
        attribute(spans.get("evens"), "label"),
        Some(&Value::from("evens"))
    );
}

#[test]
fn ret_records_the_return_value() {
    let capture = capture();
    assert_eq!(halve(6), Some(3));
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("halve"), "return.value"),
        Some(&Value::from("Some(3)"))
    );
}
