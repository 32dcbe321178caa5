//! The PostgreSQL stores: checkpoints and leases.

use super::*;

#[tokio::test]
async fn a_save_never_moves_a_checkpoint_back() {
    let Some(db) = db!("a_save_never_moves_a_checkpoint_back") else {
        return;
    };
    let schema = db.schema();
    let (pool_a, pool_b) = (db.pool(1).await, db.pool(1).await);
    let a = PostgresCheckpointStore::from_pool(pool_a.clone())
        .with_schema(&schema)
        .unwrap();
    let b = PostgresCheckpointStore::from_pool(pool_b.clone())
        .with_schema(&schema)
        .unwrap();
    a.migrate().await.unwrap();
    conformance::checkpoints::a_save_never_moves_a_checkpoint_back(Arc::new(a), Arc::new(b)).await;
    pool_a.close().await;
    pool_b.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn checkpoint_store_saves_positions_and_leases_exclude_other_pools() {
    let Some(db) = db!("checkpoint_store_saves_positions_and_leases_exclude_other_pools") else {
        return;
    };
    let schema = db.schema();
    // Two "processes": two pools (each of one connection: leases use their own).
    let (pool_a, pool_b) = (db.pool(1).await, db.pool(1).await);
    let a = PostgresCheckpointStore::from_pool(pool_a.clone())
        .with_schema(&schema)
        .unwrap();
    let b = PostgresCheckpointStore::from_pool(pool_b.clone())
        .with_schema(&schema)
        .unwrap();
    a.migrate().await.unwrap();
    // The same projection name in another schema is another store's.
    let elsewhere = PostgresCheckpointStore::from_pool(pool_b.clone())
        .with_schema(&db.schema())
        .unwrap();
    elsewhere.migrate().await.unwrap();

    conformance::checkpoints::saves_and_loads_positions(Arc::new(a.clone()), Arc::new(b.clone()))
        .await;
    // A dropped lease is freed once its session ends.
    conformance::checkpoints::leases_exclude_other_runners(
        Arc::new(a.clone()),
        Arc::new(b.clone()),
        Arc::new(elsewhere.clone()),
        DroppedLease::FreeSoon,
    )
    .await;
    conformance::checkpoints::one_winner_among_concurrent_takers(Arc::new(a.clone())).await;

    let here = a.try_acquire_lease("orders").await.unwrap().expect("free");
    let there = elsewhere.try_acquire("orders").await.unwrap();
    assert!(there.is_some(), "schemas do not share leases");

    // A lease whose session dies is lost, and says so (without a query); another runner
    // can take over.
    assert!(here.is_held());
    assert_eq!(here.projection(), "orders");
    db.terminate_backends().await;
    eventually("the lease to notice its session ended", async || {
        !here.is_held()
    })
    .await;
    eventually("the dead lease to be taken over", async || {
        b.try_acquire("orders").await.ok().flatten().is_some()
    })
    .await;
    drop(there);

    // Closed pool: typed error.
    pool_a.close().await;
    assert!(matches!(
        a.try_acquire("x").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(a.load("x").await, Err(StoreError::Unavailable(_))));
    pool_b.close().await;
    db.cleanup().await;
}

/// Leases exclude runners in the sense that matters: of many racing for one projection,
/// each on a pool of its own, exactly one wins at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_lease_at_a_time_among_racing_runners() {
    let Some(db) = db!("one_lease_at_a_time_among_racing_runners") else {
        return;
    };
    let schema = db.schema();
    let mut pools = Vec::new();
    let mut racers: Vec<Arc<dyn CheckpointStore>> = Vec::new();
    for _ in 0..6 {
        let pool = db.pool(2).await;
        let store = PostgresCheckpointStore::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap();
        store.migrate().await.unwrap();
        racers.push(Arc::new(store));
        pools.push(pool);
    }
    conformance::checkpoints::one_lease_at_a_time_among_racing_runners(racers).await;
    for pool in pools {
        pool.close().await;
    }
    db.cleanup().await;
}

/// Runs `scenario` (one of the suite's, given a fresh checkpoint store) on a migrated
/// schema of the test's own.
async fn on_a_migrated_schema<F: Future<Output = ()>>(
    test: &'static str,
    scenario: impl FnOnce(Arc<dyn CheckpointStore>) -> F,
) {
    let Some(db) = TestDb::open(test).await else {
        return;
    };
    let pool = db.pool(2).await;
    let checkpoints = PostgresCheckpointStore::from_pool(pool.clone())
        .with_schema(&db.schema())
        .unwrap();
    checkpoints.migrate().await.unwrap();
    scenario(Arc::new(checkpoints)).await;
    pool.close().await;
    db.cleanup().await;
}

/// An operator's retry requests (the suite's), in a migrated schema.
#[tokio::test]
async fn retry_requests_are_kept_with_the_parked_event() {
    on_a_migrated_schema(
        "retry_requests_are_kept_with_the_parked_event",
        conformance::checkpoints::retry_requests_are_kept_with_the_parked_event,
    )
    .await;
}

/// Why a runner stopped (the suite's), in a migrated schema.
#[tokio::test]
async fn a_runner_stop_is_listed_until_cleared() {
    on_a_migrated_schema(
        "a_runner_stop_is_listed_until_cleared",
        conformance::checkpoints::a_runner_stop_is_listed_until_cleared,
    )
    .await;
}

/// Parked events per projection (the suite's), read back through another pool.
#[tokio::test]
async fn parked_events_are_kept_per_projection() {
    let Some(db) = db!("parked_events_are_kept_per_projection") else {
        return;
    };
    let schema = db.schema();
    let (pool_a, pool_b) = (db.pool(2).await, db.pool(2).await);
    let a = PostgresCheckpointStore::from_pool(pool_a.clone())
        .with_schema(&schema)
        .unwrap();
    a.migrate().await.unwrap();
    let b = PostgresCheckpointStore::from_pool(pool_b.clone())
        .with_schema(&schema)
        .unwrap();
    conformance::checkpoints::parked_events_are_kept_per_projection(Arc::new(a), async |_| {
        Arc::new(b) as Arc<dyn CheckpointStore>
    })
    .await;
    pool_a.close().await;
    pool_b.close().await;
    db.cleanup().await;
}

/// What an operator lists (the suite's), then across pools: a lease held through one pool
/// is named, by its session, through another; split projections with their counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_store_lists_what_it_keeps() {
    use eventsource_runtime::projection::segments::SegmentClaims;

    let Some(db) = db!("checkpoint_store_lists_what_it_keeps") else {
        return;
    };
    let schema = db.schema();
    let (pool_a, pool_b) = (db.pool(2).await, db.pool(2).await);
    let a = PostgresCheckpointStore::from_pool(pool_a.clone())
        .with_schema(&schema)
        .unwrap();
    let b = PostgresCheckpointStore::from_pool(pool_b.clone())
        .with_schema(&schema)
        .unwrap();
    a.migrate().await.unwrap();
    conformance::checkpoints::lists_checkpoints_parked_counts_and_lease_holders(Arc::new(
        a.clone(),
    ))
    .await;

    let lease = a.try_acquire_lease("orders").await.unwrap().expect("free");
    let holder = b.lease_holder("orders").await.unwrap().expect("held");
    // The holder is a lease's session (one whose last statement took the lock), not one
    // of the pools' connections.
    let lease_sessions: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_try_advisory_lock%'",
    )
    .fetch_all(&db.admin)
    .await
    .unwrap();
    let pid = holder.process_id.and_then(|pid| i32::try_from(pid).ok());
    assert!(
        pid.is_some_and(|pid| lease_sessions.contains(&pid)),
        "{holder}"
    );
    assert!(holder.since.is_some(), "{holder}");
    Box::new(lease).release().await;
    eventually("the released lease to have no holder", async || {
        b.lease_holder("orders").await.unwrap().is_none()
    })
    .await;

    assert!(b.split_projections().await.unwrap().is_empty());
    assert_eq!(a.split("totals", 4).await.unwrap(), (4, true));
    let splits: Vec<(String, u32)> = b.split_projections().await.unwrap().into_iter().collect();
    assert_eq!(splits, [("totals".to_owned(), 4)]);

    pool_a.close().await;
    pool_b.close().await;
    db.cleanup().await;
}
