//! When a claim expires: by the claim timeout its owner claimed it with, whoever judges it
//! (a worker taking segments, `owners()`, `SegmentedRunner::segments()`), in memory and on
//! PostgreSQL alike.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::postgres::PostgresCheckpointStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentClaims};
use eventsource_runtime::store::EventStore;

use super::postgres::TestDb;
use super::{Versions, seed, wait_for};

/// A claim made with a long timeout outlives a short one: a claimer (and the owners'
/// report) with a short timeout of its own neither takes it nor calls it expired, and takes
/// the claim whose own short timeout passed.
async fn each_claim_expires_by_its_own_timeout(claims: &dyn SegmentClaims) {
    let p = "OwnTimeouts";
    let (long, short) = (Duration::from_secs(60), Duration::from_millis(200));
    claims.split(p, 2).await.unwrap();
    let patient = claims.claim(p, "patient", 1, long).await.unwrap();
    let hasty = claims.claim(p, "hasty", 1, short).await.unwrap();
    assert_eq!((patient.len(), hasty.len()), (1, 1));
    // A third worker says it is alive with a shorter timeout still.
    claims
        .heartbeat(p, "judge", Duration::from_millis(50))
        .await
        .unwrap();

    let hasty_expired = async || {
        let owners = claims.owners(p).await.unwrap();
        owners[hasty[0].claim.segment.index() as usize].expired
    };
    wait_for(
        "the short claim expires",
        Duration::from_secs(5),
        hasty_expired,
    )
    .await;
    let owners = claims.owners(p).await.unwrap();
    let patients = &owners[patient[0].claim.segment.index() as usize];
    assert_eq!(patients.owner.as_deref(), Some("patient"));
    assert!(!patients.expired, "60 s are not over: {patients:?}");

    let taken = claims
        .claim(p, "judge", 2, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "only the expired claim: {taken:?}");
    assert_eq!(taken[0].claim.segment, hasty[0].claim.segment);
    assert_eq!(taken[0].from.as_deref(), Some("hasty"));
}

#[tokio::test]
async fn in_memory_claims_expire_by_their_owners_timeout() {
    each_claim_expires_by_its_own_timeout(&InMemorySegmentClaims::new()).await;
}

#[tokio::test]
async fn postgres_claims_expire_by_their_owners_timeout() {
    let Some(db) = TestDb::open("postgres_claims_expire_by_their_owners_timeout").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let checkpoints: PostgresCheckpointStore = store.checkpoint_store();
    each_claim_expires_by_its_own_timeout(&checkpoints).await;
    pool.close().await;
    db.cleanup().await;
}

/// A worker with a short claim timeout dies (its task aborted: nothing released): its
/// segments read expired, in `segments()`, once that timeout passed, not the default 10 s.
async fn a_dead_workers_segments_read_expired_after_its_timeout(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    claims: Arc<dyn SegmentClaims>,
) {
    seed(&*store, 8, 1).await;
    let timeout = Duration::from_millis(400);
    let worker = Arc::new(
        ProjectionRunner::new(store, checkpoints, Versions::default())
            .poll_interval(Duration::from_millis(10))
            .segmented(claims, 4)
            .claim_timeout(timeout)
            .worker_name("short-lived"),
    );
    let running = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move { worker.run(std::future::pending::<()>()).await }
    });
    wait_for(
        "the worker holds every segment",
        Duration::from_secs(10),
        async || worker.held().len() == 4,
    )
    .await;

    running.abort();
    let _ = running.await;
    let expired = async || {
        let statuses = worker.segments().await.unwrap();
        statuses.len() == 4
            && statuses
                .iter()
                .all(|s| s.expired && s.owner.as_deref() == Some("short-lived"))
    };
    wait_for(
        "every segment reads expired",
        timeout + Duration::from_secs(3),
        expired,
    )
    .await;
}

#[tokio::test]
async fn in_memory_segments_read_expired_by_the_workers_own_timeout() {
    let checkpoints = InMemoryCheckpointStore::new();
    a_dead_workers_segments_read_expired_after_its_timeout(
        Arc::new(InMemoryEventStore::new()),
        Arc::new(checkpoints),
        Arc::new(InMemorySegmentClaims::new()),
    )
    .await;
}

#[tokio::test]
async fn postgres_segments_read_expired_by_the_workers_own_timeout() {
    let Some(db) = TestDb::open("postgres_segments_read_expired_by_the_workers_own").await else {
        return;
    };
    let pool = db.pool(8).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let checkpoints = store.checkpoint_store();
    a_dead_workers_segments_read_expired_after_its_timeout(
        Arc::new(store),
        Arc::new(checkpoints.clone()),
        Arc::new(checkpoints),
    )
    .await;
    pool.close().await;
    db.cleanup().await;
}
