//! The read side: `query::run` / `query::run_collection` emit the contract's
//! `query.{QueryType}` span (INTERNAL, child of the current span, `cqrs.side` = `read`,
//! `eventsource.query.result_count` for a collection), read back from the in-memory exporter.
//! The `cqrs.query.*` metrics are checked in `metrics.rs` (the meter provider is global).

use eventsource_runtime::query;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};

#[derive(Debug, thiserror::Error)]
#[error("read model unavailable")]
struct Unavailable;

#[tokio::test]
async fn a_collection_query_is_a_read_span_with_its_result_count() {
    let capture = capture();
    let open = tracing::Instrument::instrument(
        query::run_collection("OpenOrders", async {
            Ok::<_, Unavailable>(vec!["order-1", "order-2", "order-3"])
        }),
        tracing::info_span!("http.get_orders"),
    )
    .await
    .unwrap();
    assert_eq!(open.len(), 3);
    let spans = capture.spans();
    spans.assert_child_of("query.OpenOrders", "http.get_orders");
    let span = spans.get("query.OpenOrders");
    assert_eq!(kind(span), SpanKind::Internal);
    assert_eq!(
        attribute(span, attr::QUERY_TYPE),
        Some(&Value::from("OpenOrders"))
    );
    assert_eq!(attribute(span, attr::CQRS_SIDE), Some(&Value::from("read")));
    assert_eq!(
        attribute(span, attr::QUERY_RESULT_COUNT),
        Some(&Value::I64(3))
    );
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test]
async fn a_single_value_query_has_no_result_count_and_a_failure_is_an_error() {
    let capture = capture();
    let total = query::run("OrderTotal", async { Ok::<_, Unavailable>(3400_u64) })
        .await
        .unwrap();
    assert_eq!(total, 3400);
    let failed = query::run("OrderTotal", async { Err::<u64, _>(Unavailable) }).await;
    assert!(failed.is_err());
    let spans = capture.spans();
    let [ok, err] = spans.all("query.OrderTotal")[..] else {
        panic!("two query spans: {:?}", spans.names());
    };
    assert!(spans.is_root(ok));
    assert_eq!(attribute(ok, attr::QUERY_RESULT_COUNT), None);
    assert_eq!(ok.status, Status::Unset);
    assert_eq!(
        err.status,
        Status::error("read model unavailable"),
        "described by the error's Display"
    );
    assert_eq!(events(err, attr::SPAN_EVENT_EXCEPTION).len(), 1);
}
