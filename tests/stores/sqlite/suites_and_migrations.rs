//! The conformance suites over file and in-memory databases, connecting, migrations and
//! durability.

use super::*;

// ---- conformance ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_conforms() {
    let dir = TempDir::new("conformance");
    let seq = AtomicUsize::new(0);
    conformance::events::run_all(|| {
        let path = dir.file(&format!("{}.db", seq.fetch_add(1, Ordering::Relaxed)));
        async move { Arc::new(open(&path).await) as Arc<dyn EventStore> }
    })
    .await;
}

#[tokio::test]
async fn baggage_survives_three_appends_on_sqlite() {
    let dir = TempDir::new("baggage");
    let store = open(&dir.file("baggage.db")).await;
    conformance::baggage::survives_three_appends(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::events::run_all(|| async {
        Arc::new(open(":memory:").await) as Arc<dyn EventStore>
    })
    .await;
}

#[tokio::test]
async fn memory_databases_are_separate_and_shared_by_clones() {
    let one = open(":memory:").await;
    let other = open("sqlite::memory:").await;
    let s = StreamId::new("Counter", "m");
    one.clone()
        .append(&s, ExpectedVersion::NoStream, batch(0..2))
        .await
        .unwrap();
    assert_eq!(one.stream_version(&s).await.unwrap(), 2, "clones share");
    assert_eq!(
        other.stream_version(&s).await.unwrap(),
        0,
        "databases don't"
    );
}

#[tokio::test]
async fn connects_by_path_and_url() {
    let dir = TempDir::new("urls");
    let path = dir.file("events.db");
    for target in [
        path.clone(),
        format!("sqlite:{path}"),
        format!("sqlite://{path}"),
        format!("sqlite://{path}?mode=rwc"),
    ] {
        let store = open(&target).await;
        let s = StreamId::new("Counter", "url");
        let version = store.stream_version(&s).await.unwrap();
        store
            .append(&s, ExpectedVersion::Exact(version), batch(0..1))
            .await
            .unwrap();
        store.close().await;
    }
    let store = open(&path).await;
    assert_eq!(
        store
            .stream_version(&StreamId::new("Counter", "url"))
            .await
            .unwrap(),
        4,
        "every form opened the same file"
    );

    let missing_dir = dir.file("no/such/dir/events.db");
    assert!(matches!(
        SqliteEventStore::connect(&missing_dir).await,
        Err(StoreError::Unavailable(_))
    ));
}

// ---- migrations and durability ---------------------------------------------------------------

#[tokio::test]
async fn migrate_is_idempotent_and_creates_every_table() {
    let dir = TempDir::new("migrate");
    let path = dir.file("events.db");
    let store = open(&path).await;
    let s = StreamId::new("Counter", "mig");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..3))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.snapshot_store().migrate().await.unwrap();
    store.checkpoint_store().migrate().await.unwrap();
    assert_eq!(store.stream_version(&s).await.unwrap(), 3, "data kept");

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "checkpoints",
            "events",
            "eventsource_schema_migrations",
            "parked_events",
            "processed_messages",
            "snapshots"
        ]
    );
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM eventsource_schema_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7], "each recorded once");
    assert!(SCHEMA.contains("UNIQUE (stream_type, stream_id, version)"));

    // Concurrent migrations of a fresh database serialize.
    let fresh = dir.file("fresh.db");
    let stores: Vec<_> = futures_join_all((0..4).map(|_| {
        let fresh = fresh.clone();
        async move { SqliteEventStore::connect(&fresh).await.unwrap() }
    }))
    .await;
    let migrated = futures_join_all(
        stores
            .into_iter()
            .map(|store| async move { store.migrate().await }),
    )
    .await;
    assert!(migrated.iter().all(Result::is_ok), "{migrated:?}");

    // The WAL journal and the busy timeout are set.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(timeout, 5000);
}

/// `join_all` without a futures dependency: spawns each future on the runtime.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn events_survive_reopening_the_file() {
    let dir = TempDir::new("durable");
    let path = dir.file("events.db");
    let s = StreamId::new("Order", "o-1");
    let written = {
        let store = open(&path).await;
        store
            .append(&s, ExpectedVersion::NoStream, batch(0..3))
            .await
            .unwrap();
        store
            .append(
                &StreamId::new("Order", "o-2"),
                ExpectedVersion::Any,
                batch(0..1),
            )
            .await
            .unwrap();
        let all = store.read_all(0, 100).await.unwrap().into_events();
        store.close().await;
        all
    };
    let store = open(&path).await;
    assert_eq!(store.read_all(0, 100).await.unwrap(), written);
    assert_eq!(store.stream_version(&s).await.unwrap(), 3);
    // The next append continues the stream and the global order.
    let next = store
        .append(&s, ExpectedVersion::Exact(3), batch(3..4))
        .await
        .unwrap();
    assert_eq!(next.version, 4);
    assert!(next.events[0].position > written.last().unwrap().position);
    // The signal starts at the newest position found by `migrate`.
    let reopened = open(&path).await;
    assert_eq!(
        *reopened.appended_signal().unwrap().borrow(),
        next.events[0].position
    );
}
