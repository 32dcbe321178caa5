//! A split projection, and a split relay, as batch jobs: each worker runs until every
//! segment, whoever holds it, handled what was stored when it started
//! (`run_until_caught_up`), then stops and releases its claims.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::segments::InMemorySegmentClaims;
use eventsource_runtime::relay::Relay;

use super::{Recording, seed, worker};

#[tokio::test]
async fn two_workers_run_until_caught_up_share_the_work_and_both_stop() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 20, 3).await;
    let a = worker(&store, &checkpoints, &claims, "a", 4);
    let b = worker(&store, &checkpoints, &claims, "b", 4);
    let (ran_a, ran_b) = tokio::join!(a.run_until_caught_up(), b.run_until_caught_up());
    assert_eq!(
        (ran_a.unwrap(), ran_b.unwrap()),
        (60, 60),
        "the head when called"
    );

    // Every event handled, exactly once (no failure, no takeover), each order in order.
    let mut handled: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for worker in [&a, &b] {
        for (order, versions) in &worker.projection().lock().await.seen {
            handled.entry(order.clone()).or_default().extend(versions);
        }
    }
    assert_eq!(handled.len(), 20);
    for (order, mut versions) in handled {
        versions.sort_unstable();
        assert_eq!(versions, [1, 2, 3], "{order}: each version once");
    }
    let statuses = a.segments().await.unwrap();
    assert!(statuses.iter().all(|s| s.owner.is_none()), "{statuses:?}");
    assert!(a.held().is_empty() && b.held().is_empty());
}

#[tokio::test]
async fn run_until_caught_up_on_an_empty_store_returns_at_once() {
    let store = InMemoryEventStore::new();
    let worker = worker(
        &store,
        &InMemoryCheckpointStore::new(),
        &InMemorySegmentClaims::new(),
        "alone",
        4,
    );
    let ran = tokio::time::timeout(Duration::from_secs(10), worker.run_until_caught_up()).await;
    assert_eq!(ran.expect("returns").unwrap(), 0);
}

#[tokio::test]
async fn a_split_relay_runs_until_caught_up() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    let bus = Recording::default();
    seed(&store, 20, 5).await;
    let relay = |name: &str| {
        Relay::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Arc::new(bus.clone()),
        )
        .segmented(Arc::new(claims.clone()), 4)
        .rebalance_interval(Duration::from_millis(20))
        .worker_name(name)
    };
    let (a, b) = (relay("a"), relay("b"));
    let (ran_a, ran_b) = tokio::join!(a.run_until_caught_up(), b.run_until_caught_up());
    assert_eq!((ran_a.unwrap(), ran_b.unwrap()), (100, 100));
    let published = bus.published.lock().unwrap().clone();
    let mut positions: Vec<u64> = published.iter().map(|(_, _, p)| *p).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=100).collect::<Vec<_>>(), "each event once");
}
