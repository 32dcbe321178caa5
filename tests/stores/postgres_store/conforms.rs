//! The PostgreSQL stores: conformance and migrations.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(db) = db!("postgres_store_conforms") else {
        return;
    };
    let pool = db.pool(10).await;
    let (db_ref, pool_ref) = (&db, &pool);
    conformance::events::run_all(move || async move {
        Arc::new(db_ref.store_on(pool_ref).await) as Arc<dyn EventStore>
    })
    .await;
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn baggage_survives_three_appends_on_postgres() {
    let Some(db) = db!("baggage_survives_three_appends_on_postgres") else {
        return;
    };
    let pool = db.pool(2).await;
    conformance::baggage::survives_three_appends(Arc::new(db.store_on(&pool).await)).await;
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let Some(db) = db!("migrate_is_idempotent_and_safe_to_run_concurrently") else {
        return;
    };
    let pool = db.pool(6).await;
    let schema = db.schema();
    let stores: Vec<PostgresEventStore> = (0..4)
        .map(|_| {
            PostgresEventStore::from_pool(pool.clone())
                .with_schema(&schema)
                .unwrap()
        })
        .collect();
    // Four processes starting at once on a new schema.
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let store = &stores[0];
    let s = StreamId::new("Counter", "m");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    // Again, from every kind of store: nothing changes, nothing is lost.
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.snapshot_store().migrate().await.unwrap();
    store.checkpoint_store().migrate().await.unwrap();
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 2);
    let applied: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{schema}\".eventsource_schema_migrations ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        applied,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "each version once"
    );
    pool.close().await;
    db.cleanup().await;
}

#[test]
fn schema_names_are_checked() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = runtime.enter();
    let options: PgConnectOptions = "postgres://nobody@127.0.0.1:1/none".parse().unwrap();
    let pool = PgPoolOptions::new().connect_lazy_with(options);
    for bad in [
        "",
        "Public",
        "1st",
        "a-b",
        "x\"; DROP TABLE y; --",
        &"a".repeat(64),
    ] {
        let refused = PostgresEventStore::from_pool(pool.clone())
            .with_schema(bad)
            .unwrap_err();
        assert_eq!(refused, InvalidSchemaName(bad.to_owned()));
        assert!(
            PostgresSnapshotStore::from_pool(pool.clone())
                .with_schema(bad)
                .is_err()
        );
        assert!(
            PostgresCheckpointStore::from_pool(pool.clone())
                .with_schema(bad)
                .is_err()
        );
    }
    let ok = PostgresEventStore::from_pool(pool)
        .with_schema("billing_2")
        .unwrap();
    assert_eq!(ok.schema(), "billing_2");
}
