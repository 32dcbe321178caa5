//! The PostgreSQL stores: processed messages.

use super::*;

/// Two stores, each on a pool of its own (two processes, say), sharing the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processed_messages_conform() {
    let Some(db) = db!("processed_messages_conform") else {
        return;
    };
    let schema = db.schema();
    let (pool_a, pool_b) = (db.pool(4).await, db.pool(4).await);
    let store = |pool: &PgPool| {
        PostgresEventStore::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap()
    };
    let first = store(&pool_a);
    first.migrate().await.unwrap();
    let (first, second) = (
        first.processed_messages(),
        store(&pool_b).processed_messages(),
    );
    conformance::processed::run_all(Arc::new(first), Arc::new(second)).await;
    pool_a.close().await;
    pool_b.close().await;
    db.cleanup().await;
}
