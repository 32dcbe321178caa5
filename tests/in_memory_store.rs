//! The in-memory store passes the event-store conformance suite.

#[path = "common/conformance.rs"]
mod conformance;

use std::sync::Arc;

use eventsource_runtime::store::{EventStore, InMemoryEventStore};

async fn fresh() -> Arc<dyn EventStore> {
    Arc::new(InMemoryEventStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_conforms() {
    conformance::run_all(fresh).await;
}

#[tokio::test]
async fn clones_share_one_log() {
    let store = InMemoryEventStore::new();
    let clone = store.clone();
    conformance::versions_and_positions(Arc::new(clone)).await;
    assert_eq!(store.len(), 6);
}

#[tokio::test]
async fn an_unbounded_read_records_no_limit_and_a_bounded_one_its_limit() {
    use eventsource_runtime::store::UNBOUNDED;
    use eventsource_runtime::telemetry::attributes as attr;
    use eventsource_runtime::testing::{attribute, capture};
    let capture = capture();
    let store = InMemoryEventStore::new();
    store.read_all(1, UNBOUNDED).await.unwrap();
    store.read_all(1, 10).await.unwrap();
    let spans = capture.spans();
    let reads = spans.all(attr::SPAN_STORE_READ_ALL);
    assert_eq!(reads.len(), 2, "{}", spans.tree());
    let limits: Vec<_> = reads
        .iter()
        .map(|span| attribute(span, attr::READ_LIMIT).cloned())
        .collect();
    assert!(limits.contains(&None), "the unbounded read: {limits:?}");
    assert!(
        limits.contains(&Some(opentelemetry::Value::I64(10))),
        "the bounded read: {limits:?}"
    );
}
