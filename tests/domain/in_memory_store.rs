//! The in-memory stores pass the conformance suites: events, snapshots, checkpoints (with
//! leases and parked events) and processed messages.

use crate::conformance;

use std::sync::Arc;

use conformance::checkpoints::DroppedLease;
use eventsource_runtime::bus::{InMemoryProcessedMessages, ProcessedMessages};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::snapshot::{InMemorySnapshotStore, SnapshotStore};
use eventsource_runtime::store::{EventStore, InMemoryEventStore};

async fn fresh() -> Arc<dyn EventStore> {
    Arc::new(InMemoryEventStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_conforms() {
    conformance::events::run_all(fresh).await;
}

#[tokio::test]
async fn baggage_survives_three_appends_in_memory() {
    conformance::baggage::survives_three_appends(fresh().await).await;
}

#[tokio::test]
async fn clones_share_one_log() {
    let store = InMemoryEventStore::new();
    let clone = store.clone();
    conformance::events::versions_and_positions(Arc::new(clone)).await;
    assert_eq!(store.len(), 6);
}

/// Two handles (clones) on one in-memory snapshot store.
fn snapshot_store() -> (Arc<dyn SnapshotStore>, Arc<dyn SnapshotStore>) {
    let store = InMemorySnapshotStore::new();
    (Arc::new(store.clone()), Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_snapshot_store_conforms() {
    conformance::snapshots::run_all(async || snapshot_store()).await;
}

/// Two handles (clones) on one in-memory checkpoint store.
fn checkpoint_store() -> (Arc<dyn CheckpointStore>, Arc<dyn CheckpointStore>) {
    let store = InMemoryCheckpointStore::new();
    (Arc::new(store.clone()), Arc::new(store))
}

#[tokio::test]
async fn in_memory_checkpoints_never_move_back() {
    let (first, second) = checkpoint_store();
    conformance::checkpoints::a_save_never_moves_a_checkpoint_back(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_checkpoint_store_conforms() {
    use conformance::checkpoints as suite;
    let (first, second) = checkpoint_store();
    suite::saves_and_loads_positions(first, second).await;
    let (first, second) = checkpoint_store();
    let elsewhere = checkpoint_store().0;
    suite::leases_exclude_other_runners(first, second, elsewhere, DroppedLease::FreeAtOnce).await;
    suite::one_winner_among_concurrent_takers(checkpoint_store().0).await;
    let store = InMemoryCheckpointStore::new();
    let racers = (0..6)
        .map(|_| Arc::new(store.clone()) as Arc<dyn CheckpointStore>)
        .collect();
    suite::one_lease_at_a_time_among_racing_runners(racers).await;
    let (first, second) = checkpoint_store();
    suite::parked_events_are_kept_per_projection(first, async |_| second).await;
    suite::retry_requests_are_kept_with_the_parked_event(checkpoint_store().0).await;
    suite::a_runner_stop_is_listed_until_cleared(checkpoint_store().0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_processed_messages_conform() {
    let store = InMemoryProcessedMessages::new();
    let (first, second): (Arc<dyn ProcessedMessages>, Arc<dyn ProcessedMessages>) =
        (Arc::new(store.clone()), Arc::new(store));
    conformance::processed::run_all(first, second).await;
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

#[tokio::test]
async fn in_memory_checkpoint_store_lists_what_it_keeps() {
    conformance::checkpoints::lists_checkpoints_parked_counts_and_lease_holders(
        checkpoint_store().0,
    )
    .await;
}
