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
