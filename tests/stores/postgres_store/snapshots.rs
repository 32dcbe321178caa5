//! The PostgreSQL stores: snapshots.

use super::*;

#[tokio::test]
async fn snapshot_store_keeps_the_newest_per_stream() {
    use conformance::snapshots as suite;
    let Some(db) = db!("snapshot_store_keeps_the_newest_per_stream") else {
        return;
    };
    let pool = db.pool(4).await;
    let schema = db.schema();
    let snapshots = PostgresSnapshotStore::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap();
    snapshots.migrate().await.unwrap();
    suite::keeps_the_newest_per_stream(Arc::new(snapshots.clone())).await;

    // Another store on another pool sharing the table.
    let elsewhere_pool = db.pool(2).await;
    let elsewhere = PostgresSnapshotStore::from_pool(elsewhere_pool.clone())
        .with_schema(&schema)
        .unwrap();
    suite::shared_by_every_handle(Arc::new(snapshots.clone()), Arc::new(elsewhere)).await;

    // A damaged snapshot is no snapshot (a full replay), not an error.
    let table = format!("\"{schema}\".snapshots");
    suite::an_unreadable_snapshot_is_no_snapshot(Arc::new(snapshots.clone()), async |s| {
        sqlx::query(&format!(
            "UPDATE {table} SET version = -1 WHERE stream_id = $1"
        ))
        .bind(s.aggregate_id())
        .execute(&pool)
        .await
        .unwrap();
    })
    .await;

    suite::the_newest_wins_among_concurrent_savers(Arc::new(snapshots)).await;
    elsewhere_pool.close().await;
    pool.close().await;
    db.cleanup().await;
}
