//! The SQLite stores: the conformance suites of the event store (file and in-memory
//! databases), the snapshot and checkpoint stores (leases, parked events) and processed
//! messages; migrations, durability, damaged rows, concurrency stress, faults and spans.

use crate::conformance;

#[path = "../../examples/domain/order.rs"]
mod domain;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conformance::checkpoints::DroppedLease;
use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::ProcessedMessages;
use eventsource_runtime::command::{CommandError, CommandService};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::repository::{Repository, RepositoryError};
use eventsource_runtime::snapshot::SnapshotStore;
use eventsource_runtime::sqlite::{
    SCHEMA, SqliteCheckpointStore, SqliteEventStore, SqliteProcessedMessages, SqliteSnapshotStore,
};
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{
    BatchEnd, EventStore, ExpectedVersion, StoreError, StoreSpanNames,
};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::attributes::{
    SPAN_SNAPSHOT_STORE_DELETE, SPAN_SNAPSHOT_STORE_EXISTS, SPAN_SNAPSHOT_STORE_GET,
    SPAN_SNAPSHOT_STORE_SAVE, SPAN_STORE_APPEND, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL,
};
use eventsource_runtime::testing::{attribute, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use serde_json::json;
use tracing::Instrument as _;

// ---- helpers -------------------------------------------------------------------------------

/// A directory under `target/tmp` removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sqlite-{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(target: &str) -> SqliteEventStore {
    let store = SqliteEventStore::connect(target).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn counted(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, json!({ "n": n }))
}

fn batch(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(counted).collect()
}

async fn execute(store: &SqliteEventStore, sql: &str) {
    sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

/// Every stream gapless and duplicate-free, `read_all` has every event once, in order.
async fn assert_consistent(store: &dyn EventStore) -> usize {
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "read_all out of order"
    );
    let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), all.len(), "an event appears twice");
    let streams: HashSet<StreamId> = all.iter().map(|e| e.stream.clone()).collect();
    let mut total = 0;
    for stream in &streams {
        let loaded = store.load(stream, 1).await.unwrap();
        for (i, e) in loaded.iter().enumerate() {
            assert_eq!(e.version, i as u64 + 1, "gap or duplicate in {stream}");
        }
        assert_eq!(
            store.stream_version(stream).await.unwrap(),
            loaded.len() as u64
        );
        total += loaded.len();
    }
    assert_eq!(total, all.len(), "read_all and the streams disagree");
    total
}

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
    assert_eq!(versions, [1, 2, 3, 4, 5], "each recorded once");
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

// ---- damaged rows ----------------------------------------------------------------------------

#[tokio::test]
async fn a_damaged_row_is_a_typed_error_not_a_panic() {
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "c");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..4))
        .await
        .unwrap();
    execute(
        &store,
        "UPDATE events SET payload = '{not json' WHERE stream_id = 'c' AND version = 2",
    )
    .await;

    let corrupt = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt {
            stream,
            version,
            reason,
            ..
        }) => (stream, version, reason),
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    };
    let (stream, version, reason) = corrupt(store.load(&s, 1).await);
    assert_eq!((stream, version), (s.clone(), 2));
    assert!(reason.starts_with("payload"), "{reason}");
    // `read_all` returns the event before the damaged one, then names the damaged one.
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
    let batch = store.read_all(0, 100).await.unwrap();
    assert!(
        matches!(
            batch.end(),
            BatchEnd::Unreadable(StoreError::Corrupt { position: 2, .. })
        ),
        "the batch says why it ended: {:?}",
        batch.end()
    );
    assert_eq!(corrupt(store.read_all(2, 100).await.map(Vec::from)).1, 2);
    // Reads that do not touch the damaged row work.
    assert_eq!(store.load(&s, 3).await.unwrap().len(), 2);
    assert_eq!(store.read_all(3, 100).await.unwrap().len(), 2);
    assert_eq!(store.stream_version(&s).await.unwrap(), 4);

    for (column, value, version) in [
        ("metadata", "'[1, 2]'", 3),
        ("timestamp", "'yesterday'", 3),
        ("event_id", "'not-a-uuid'", 3),
        ("payload", "x'00ff'", 4),
        ("schema_version", "-1", 4),
    ] {
        execute(
            &store,
            &format!(
                "UPDATE events SET {column} = {value} WHERE stream_id = 'c' AND version = {version}"
            ),
        )
        .await;
        let (stream, found, reason) = corrupt(store.load(&s, version).await);
        assert_eq!((stream, found), (s.clone(), version));
        assert!(reason.starts_with(column), "{column}: {reason}");
    }
}

#[tokio::test]
async fn a_damaged_row_reaches_the_repository_as_a_typed_error() {
    let store = open(":memory:").await;
    // No cache: it would decide from the state it kept before the damage, reading only
    // the rows after it.
    let orders = CommandService::with_repository(
        Repository::<Order>::new(store.clone()).with_cache(0),
        eventsource_runtime::projection::ProjectionRegistry::new(),
    );
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    execute(
        &store,
        "UPDATE events SET payload = 'garbage' WHERE stream_id = 'o-1'",
    )
    .await;

    let loaded = Repository::<Order>::new(store.clone()).load("o-1").await;
    assert!(
        matches!(
            &loaded,
            Err(RepositoryError::Store(StoreError::Corrupt {
                version: 1,
                ..
            }))
        ),
        "{loaded:?}"
    );
    let shipped = orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await;
    assert!(
        matches!(
            &shipped,
            Err(CommandError::Repository(RepositoryError::Store(
                StoreError::Corrupt { .. }
            )))
        ),
        "{shipped:?}"
    );
    assert_eq!(
        store
            .stream_version(&StreamId::new("Order", "o-1"))
            .await
            .unwrap(),
        1,
        "nothing appended"
    );
}

/// A projection that records the positions it handled.
struct Seen {
    positions: Arc<std::sync::Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Seen {
    fn name(&self) -> &str {
        "Seen"
    }
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.positions.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// Issue 9's damaged database: good events, one whose metadata holds values that are not
/// strings (readable: they come back as JSON text), one with a negative schema version
/// (unreadable), and good events after it. `read_all` returns every event before the
/// unreadable one, then names it; a runner handles them and stops there (`Stop`), or parks
/// it and goes on (`Park`), and handles it once the row is repaired.
#[tokio::test]
async fn an_unreadable_row_after_good_ones_is_stopped_at_or_parked() {
    let store = open(":memory:").await;
    store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            batch(0..8),
        )
        .await
        .unwrap();
    execute(
        &store,
        "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, timestamp, payload, metadata) VALUES \
         ('Order', 'legacy', 1, '0190a000-0000-7000-8000-000000000001', 'Imported', 1, \
          '2025-01-31T12:00:00.000000000Z', '{\"n\": 9}', \
          '{\"attempt\": 7, \"origin\": {\"app\": \"legacy\"}, \"gone\": null}'), \
         ('Order', 'legacy', 2, '0190a000-0000-7000-8000-000000000002', 'Imported', -1, \
          '2025-01-31T12:00:01.000000000Z', '{}', '{}')",
    )
    .await;
    store
        .append(
            &StreamId::new("Order", "o-2"),
            ExpectedVersion::NoStream,
            batch(0..2),
        )
        .await
        .unwrap();

    // A metadata value that is not a string is read as its JSON text.
    let legacy = store
        .load(&StreamId::new("Order", "legacy"), 1)
        .await
        .unwrap_err();
    assert!(matches!(legacy, StoreError::Corrupt { version: 2, .. }));
    let nine = &store.read_all(9, 1).await.unwrap()[0];
    assert_eq!(nine.metadata.get("attempt"), Some("7"));
    assert_eq!(nine.metadata.get("origin"), Some(r#"{"app":"legacy"}"#));
    assert_eq!(nine.metadata.get("gone"), Some("null"));

    // `read_all`: the nine good events, then the unreadable one named, then the rest.
    let before: Vec<u64> = store
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(before, (1..=9).collect::<Vec<_>>());
    let error = store.read_all(10, 100).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { position: 10, version: 2, reason, .. }
            if reason.starts_with("schema_version")),
        "{error:?}"
    );
    assert!(error.to_string().contains("at position 10"), "{error}");
    assert_eq!(store.read_all(11, 100).await.unwrap().len(), 2);

    // Stop (the default): the nine are handled, then a typed stop naming the event.
    let checkpoints = store.checkpoint_store();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runner = |policy| {
        ProjectionRunner::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Seen {
                positions: Arc::clone(&seen),
            },
        )
        .batch_size(4)
        .on_unreadable(policy)
    };
    let stopped = runner(UnreadablePolicy::Stop)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(&stopped, RunnerError::UnreadableEvent { position: 10, .. }),
        "{stopped:?}"
    );
    assert_eq!(*seen.lock().unwrap(), (1..=9).collect::<Vec<_>>());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 9);

    // Park: kept in the parked_events table with its error; the rest is handled.
    let parking = runner(UnreadablePolicy::Park);
    assert_eq!(parking.run_until_caught_up().await.unwrap(), 12);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    let parked = parking.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 10);
    assert!(
        parked[0].error.contains("schema_version"),
        "{}",
        parked[0].error
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE projection = 'Seen'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(rows, 1);

    // Repaired, the parked event is handed over and unparked.
    execute(
        &store,
        "UPDATE events SET schema_version = 1 WHERE position = 10",
    )
    .await;
    assert!(parking.retry_parked().await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().last(), Some(&10));
    assert!(checkpoints.parked("Seen").await.unwrap().is_empty());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 12);
}

/// Parked events per projection (the suite's): they survive reopening the file.
#[tokio::test]
async fn parked_events_are_kept_per_projection() {
    let dir = TempDir::new("parked");
    let path = dir.file("events.db");
    let checkpoints = open(&path).await.checkpoint_store();
    let parking = checkpoints.clone();
    conformance::checkpoints::parked_events_are_kept_per_projection(
        Arc::new(checkpoints),
        async |_| {
            parking.pool().close().await;
            Arc::new(open(&path).await.checkpoint_store()) as Arc<dyn CheckpointStore>
        },
    )
    .await;
}

/// A NUL character in a stream id is the same typed error for the snapshot store as for
/// the event store (the conformance suite checks the event store).
#[tokio::test]
async fn nul_in_a_stream_id_is_invalid_for_snapshots_too() {
    let store = open(":memory:").await;
    conformance::snapshots::nul_in_a_stream_id_is_invalid(Arc::new(store.snapshot_store())).await;
}

// ---- concurrency -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_many_writers_on_one_stream() {
    let dir = TempDir::new("stress-one");
    let store = Arc::new(open(&dir.file("events.db")).await);
    conformance::events::concurrent_writers_on_one_stream(store.clone(), 32, 40).await;
    assert!(assert_consistent(&*store).await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_many_writers_on_many_streams() {
    let dir = TempDir::new("stress-many");
    let store = Arc::new(open(&dir.file("events.db")).await);
    conformance::events::concurrent_writers_on_many_streams(store.clone(), 64, 40).await;
    assert_eq!(assert_consistent(&*store).await, 64 * 40);
}

/// Writers on streams of their own (`{prefix}-{n}`), each appending one event at a time
/// with the exact expected version, next to whatever else runs on the store.
async fn writers_on_own_streams(
    store: Arc<dyn EventStore>,
    prefix: &'static str,
    streams: u64,
    per_stream: u64,
) {
    let mut tasks = Vec::new();
    for n in 0..streams {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new("Counter", format!("{prefix}-{n}"));
            for v in 0..per_stream {
                store
                    .append(&s, ExpectedVersion::Exact(v), batch(v..v + 1))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_both_at_once_through_two_pools_on_one_file() {
    // Two stores on the same file do not share the in-process write queue: they meet at
    // SQLite's write lock (BEGIN IMMEDIATE and the busy timeout), as two processes would.
    let dir = TempDir::new("stress-two-pools");
    let path = dir.file("events.db");
    let first: Arc<dyn EventStore> = Arc::new(open(&path).await);
    let second: Arc<dyn EventStore> = Arc::new(open(&path).await);
    let contended_first = tokio::spawn(conformance::events::concurrent_writers_on_one_stream(
        first.clone(),
        16,
        30,
    ));
    let own_first = tokio::spawn(writers_on_own_streams(first.clone(), "first", 16, 30));
    let own_second = tokio::spawn(writers_on_own_streams(second.clone(), "second", 16, 30));
    contended_first.await.unwrap();
    own_first.await.unwrap();
    own_second.await.unwrap();

    // One stream, writers alternating between the two pools: every version won once.
    let s = StreamId::new("Counter", "across-pools");
    let mut tasks = Vec::new();
    for writer in 0..16u64 {
        let store = if writer % 2 == 0 { &first } else { &second }.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0u64;
            for _ in 0..20 {
                let version = store.stream_version(&s).await.unwrap();
                match store
                    .append(&s, ExpectedVersion::from_version(version), batch(0..2))
                    .await
                {
                    Ok(_) => wins += 1,
                    Err(StoreError::Conflict(c)) => assert!(c.actual > version),
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap();
    }
    assert_eq!(first.stream_version(&s).await.unwrap(), 2 * wins);

    let total = assert_consistent(&*first).await;
    assert_eq!(assert_consistent(&*second).await, total);
    assert!(total > 2 * 16 * 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_memory_database() {
    let store: Arc<dyn EventStore> = Arc::new(open(":memory:").await);
    let contended = tokio::spawn(conformance::events::concurrent_writers_on_one_stream(
        store.clone(),
        16,
        30,
    ));
    let own = tokio::spawn(writers_on_own_streams(store.clone(), "mem", 32, 30));
    contended.await.unwrap();
    own.await.unwrap();
    assert!(assert_consistent(&*store).await > 32 * 30);
}

// ---- atomicity and faults --------------------------------------------------------------------

#[tokio::test]
async fn a_batch_failing_halfway_appends_nothing() {
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "half");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..2))
        .await
        .unwrap();
    // The database refuses the third event of the next batch.
    execute(
        &store,
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN json_extract(NEW.payload, '$.n') = 4 \
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
    )
    .await;
    let result = store
        .append(&s, ExpectedVersion::Exact(2), batch(2..6))
        .await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(e)) if e.to_string().contains("disk on fire")),
        "{result:?}"
    );
    assert_eq!(
        store.stream_version(&s).await.unwrap(),
        2,
        "no partial batch"
    );
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
    // The store keeps working.
    execute(&store, "DROP TRIGGER refuse").await;
    assert_eq!(
        store
            .append(&s, ExpectedVersion::Exact(2), batch(2..6))
            .await
            .unwrap()
            .version,
        6
    );
}

#[tokio::test]
async fn a_unique_violation_is_the_typed_conflict() {
    // Simulates a writer that slipped in between the version check and the insert (which
    // BEGIN IMMEDIATE prevents for well-behaved writers): a trigger takes the version first.
    let store = open(":memory:").await;
    let s = StreamId::new("Counter", "race");
    store
        .append(&s, ExpectedVersion::NoStream, batch(0..1))
        .await
        .unwrap();
    execute(
        &store,
        "CREATE TRIGGER sneak BEFORE INSERT ON events WHEN NEW.event_type = 'Sneaky' BEGIN \
         INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata) \
         VALUES (NEW.stream_type, NEW.stream_id, NEW.version, NEW.event_id, 'Other', 1, NEW.timestamp, '{}', '{}'); END",
    )
    .await;
    let result = store
        .append(
            &s,
            ExpectedVersion::Exact(1),
            vec![NewEvent::new("Sneaky", 1, json!({}))],
        )
        .await;
    match result {
        Err(StoreError::Conflict(c)) => {
            assert_eq!(c.stream, s);
            assert_eq!(c.expected, ExpectedVersion::Exact(1));
            assert_eq!(c.actual, 1, "the version left after the rollback");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_append_is_never_partial() {
    // The caller stops waiting at various points of a 500-event append: the batch is never
    // visible in part, and (it runs in a task of its own) it is not cut short either.
    let dir = TempDir::new("abandoned");
    for target in [":memory:".to_owned(), dir.file("events.db")] {
        let store = open(&target).await;
        let streams: Vec<StreamId> = (0..20)
            .map(|n| StreamId::new("Counter", format!("abandoned-{n}")))
            .collect();
        for (n, s) in (0u64..).zip(&streams) {
            let append = store.append(s, ExpectedVersion::NoStream, batch(0..500));
            let _ = tokio::time::timeout(Duration::from_micros(200 * n), append).await;
            let version = store.stream_version(s).await.unwrap();
            assert!(version == 0 || version == 500, "partial batch: {version}");
        }
        for s in &streams {
            let mut version = 0;
            for _ in 0..500 {
                version = store.stream_version(s).await.unwrap();
                assert!(version == 0 || version == 500, "partial batch: {version}");
                if version == 500 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(version, 500, "{s}: the abandoned append completed");
        }
        // The connections are fine: nothing was left inside a transaction.
        let s = StreamId::new("Counter", "after");
        store
            .append(&s, ExpectedVersion::NoStream, batch(0..3))
            .await
            .unwrap();
        assert_eq!(assert_consistent(&store).await, 20 * 500 + 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_the_pool_mid_run_fails_typed_and_leaves_no_partial_batch() {
    const BATCH: u64 = 10;
    let dir = TempDir::new("fault");
    let path = dir.file("events.db");
    let store = open(&path).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let s = StreamId::new("Counter", format!("fault-{w}"));
            let mut acknowledged = 0;
            loop {
                let events = batch(acknowledged..acknowledged + BATCH);
                match store
                    .append(&s, ExpectedVersion::Exact(acknowledged), events)
                    .await
                {
                    Ok(appended) => acknowledged = appended.version,
                    Err(StoreError::Unavailable(_)) => return (s, acknowledged),
                    Err(other) => panic!("expected Unavailable, got {other:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.close().await;

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }
    let s = &acknowledged[0].0;
    assert!(matches!(
        store.load(s, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read_all(0, 10).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.stream_version(s).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.migrate().await,
        Err(StoreError::Unavailable(_))
    ));

    // The database is back: exactly the acknowledged batches are there.
    let reopened = open(&path).await;
    let mut total = 0;
    for (s, acknowledged) in &acknowledged {
        let version = reopened.stream_version(s).await.unwrap();
        assert_eq!(version, *acknowledged, "{s}: acknowledged vs stored");
        assert_eq!(version % BATCH, 0, "{s}: partial batch");
        total += version;
    }
    assert!(
        total > 0,
        "the writers made progress before the pool closed"
    );
    assert_eq!(assert_consistent(&reopened).await as u64, total);
}

// ---- signal ----------------------------------------------------------------------------------

#[tokio::test]
async fn appends_wake_followers() {
    let store = open(":memory:").await;
    let mut signal = store.appended_signal().expect("a signal");
    assert_eq!(*signal.borrow_and_update(), 0);
    let follower = tokio::spawn(async move {
        signal.changed().await.unwrap();
        *signal.borrow_and_update()
    });
    let appended = store
        .clone()
        .append(
            &StreamId::new("Counter", "sig"),
            ExpectedVersion::Any,
            batch(0..3),
        )
        .await
        .unwrap();
    let woke_at = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(woke_at, appended.events[2].position);

    // A failed append does not signal.
    let mut signal = store.appended_signal().unwrap();
    signal.borrow_and_update();
    let _ = store
        .append(
            &StreamId::new("Counter", "sig"),
            ExpectedVersion::NoStream,
            batch(0..1),
        )
        .await
        .unwrap_err();
    assert!(!signal.has_changed().unwrap());
}

// ---- spans -----------------------------------------------------------------------------------

#[tokio::test]
async fn spans_are_client_spans_with_the_database_attributes() {
    let store = open(":memory:").await;
    let capture = eventsource_runtime::testing::capture();
    let s = StreamId::new("Order", "o-1");
    async {
        store
            .append(&s, ExpectedVersion::NoStream, batch(0..2))
            .await
            .unwrap();
        store.load(&s, 1).await.unwrap();
        store.read_all(0, 10).await.unwrap();
    }
    .instrument(tracing::info_span!("command"))
    .await;

    let spans = capture.spans();
    for (name, operation) in [
        (SPAN_STORE_APPEND, "append"),
        (SPAN_STORE_LOAD, "load"),
        (SPAN_STORE_READ_ALL, "read_all"),
    ] {
        spans.assert_child_of(name, "command");
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("sqlite"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("events"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
        assert_eq!(
            attribute(span, attr::DB_QUERY_TEXT),
            None,
            "query text is opt-in"
        );
    }
    let append = spans.get(SPAN_STORE_APPEND);
    assert_eq!(events(append, "event_persisted").len(), 2);
    assert_eq!(attribute(append, attr::VERSION), Some(&Value::I64(2)));
    assert_eq!(
        attribute(spans.get(SPAN_STORE_LOAD), attr::EVENTS_LOADED),
        Some(&Value::I64(2))
    );

    // The append's trace context is stored with each event, and read back from the table.
    let stored = store.load(&s, 1).await.unwrap();
    let trace_id = append.span_context.trace_id().to_string();
    for event in &stored {
        let traceparent = event.metadata.traceparent().expect("traceparent stored");
        assert!(traceparent.contains(&trace_id), "{traceparent}");
    }
}

#[tokio::test]
async fn query_text_names_and_switch() {
    let store = open(":memory:").await;
    let s = StreamId::new("Order", "o-1");

    let capture = eventsource_runtime::testing::capture();
    let recording = store.clone().record_query_text(true);
    recording
        .append(&s, ExpectedVersion::NoStream, batch(0..1))
        .await
        .unwrap();
    recording.load(&s, 1).await.unwrap();
    recording.read_all(0, 10).await.unwrap();
    let spans = capture.spans();
    let text = |name| match attribute(spans.get(name), attr::DB_QUERY_TEXT) {
        Some(Value::String(text)) => text.as_str().to_owned(),
        other => panic!("{name}: no query text ({other:?})"),
    };
    assert!(text(SPAN_STORE_APPEND).contains("INSERT INTO events"));
    assert!(text(SPAN_STORE_LOAD).starts_with("SELECT"));
    assert!(text(SPAN_STORE_READ_ALL).contains("ORDER BY position LIMIT"));
    assert!(!text(SPAN_STORE_APPEND).contains("Counted"), "no values");
    drop(capture);

    // Switched off: no span, and the query text does not land on the caller's span.
    let capture = eventsource_runtime::testing::capture();
    let silent = store.clone().record_query_text(true).enable_tracing(false);
    async {
        silent.load(&s, 1).await.unwrap();
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    let spans = capture.spans();
    assert_eq!(spans.names(), ["caller"]);
    assert_eq!(attribute(spans.get("caller"), attr::DB_QUERY_TEXT), None);
    drop(capture);

    // Renamed.
    let capture = eventsource_runtime::testing::capture();
    let renamed = store.clone().with_span_names(StoreSpanNames {
        load: "event_store.load",
        append: "event_store.append",
        read_all: "event_store.read_all",
        events_by_correlation: "event_store.events_by_correlation",
    });
    renamed.load(&s, 1).await.unwrap();
    renamed
        .append(&s, ExpectedVersion::Any, batch(1..2))
        .await
        .unwrap();
    let spans = capture.spans();
    assert_eq!(spans.names(), ["event_store.load", "event_store.append"]);
}

// ---- snapshots -------------------------------------------------------------------------------

#[tokio::test]
async fn snapshots_keep_the_newest_per_stream() {
    use conformance::snapshots as suite;
    let dir = TempDir::new("snapshots");
    let path = dir.file("events.db");
    let snapshots = SqliteSnapshotStore::connect(&path).await.unwrap();
    snapshots.migrate().await.unwrap();
    snapshots.migrate().await.unwrap();
    suite::keeps_the_newest_per_stream(Arc::new(snapshots.clone())).await;
    // Another pool on the same file.
    let second = SqliteSnapshotStore::connect(&path).await.unwrap();
    suite::shared_by_every_handle(Arc::new(snapshots.clone()), Arc::new(second.clone())).await;
    suite::the_newest_wins_among_concurrent_savers(Arc::new(snapshots.clone())).await;
    second.pool().close().await;

    // Durable, and shared with an event store on the same file.
    snapshots.pool().close().await;
    let store = open(&path).await;
    assert_eq!(
        store
            .snapshot_store()
            .get(&StreamId::new("Invoice", "snap-1"))
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn an_unreadable_snapshot_is_no_snapshot() {
    let store = open(":memory:").await;
    let snapshots = store.snapshot_store();
    conformance::snapshots::an_unreadable_snapshot_is_no_snapshot(
        Arc::new(snapshots.clone()),
        async |_| execute(&store, "UPDATE snapshots SET state = '{oops'").await,
    )
    .await;

    store.close().await;
    assert!(matches!(
        snapshots.get(&StreamId::new("Order", "bad")).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn snapshot_spans() {
    let store = open(":memory:").await;
    let snapshots = store.snapshot_store();
    let s = StreamId::new("Order", "o-9");
    let capture = eventsource_runtime::testing::capture();
    snapshots
        .save(conformance::snapshots::snapshot(&s, 7))
        .await
        .unwrap();
    snapshots.get(&s).await.unwrap();
    snapshots.exists(&s).await.unwrap();
    snapshots.delete(&s).await.unwrap();
    let spans = capture.spans();
    assert_eq!(
        spans.names(),
        [
            SPAN_SNAPSHOT_STORE_SAVE,
            SPAN_SNAPSHOT_STORE_GET,
            SPAN_SNAPSHOT_STORE_EXISTS,
            SPAN_SNAPSHOT_STORE_DELETE
        ]
    );
    for (name, operation) in [
        (SPAN_SNAPSHOT_STORE_SAVE, "save"),
        (SPAN_SNAPSHOT_STORE_GET, "get"),
        (SPAN_SNAPSHOT_STORE_EXISTS, "exists"),
        (SPAN_SNAPSHOT_STORE_DELETE, "delete"),
    ] {
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client);
        assert_eq!(attribute(span, attr::AGGREGATE_ID), Some(&string("o-9")));
        assert_eq!(
            attribute(span, attr::AGGREGATE_TYPE),
            Some(&string("Order"))
        );
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("sqlite"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("snapshots"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
    }
    for name in [SPAN_SNAPSHOT_STORE_SAVE, SPAN_SNAPSHOT_STORE_GET] {
        assert_eq!(
            attribute(spans.get(name), attr::VERSION),
            Some(&Value::I64(7))
        );
    }
    capture.clear();
    let silent = snapshots.clone().enable_tracing(false);
    silent.get(&s).await.unwrap();
    assert!(capture.spans().is_empty());
}

// ---- checkpoints -----------------------------------------------------------------------------

#[tokio::test]
async fn checkpoints_load_and_save() {
    let dir = TempDir::new("checkpoints");
    let path = dir.file("events.db");
    let checkpoints = SqliteCheckpointStore::connect(&path).await.unwrap();
    checkpoints.migrate().await.unwrap();
    // Another pool on the same file.
    let second = SqliteCheckpointStore::connect(&path).await.unwrap();
    conformance::checkpoints::saves_and_loads_positions(
        Arc::new(checkpoints.clone()),
        Arc::new(second.clone()),
    )
    .await;
    second.pool().close().await;
    checkpoints.save("orders", 42).await.unwrap();

    checkpoints.pool().close().await;
    assert!(matches!(
        checkpoints.load("orders").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        checkpoints.save("orders", 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(checkpoints.try_acquire("orders").await.is_err());

    let reopened = open(&path).await.checkpoint_store();
    assert_eq!(reopened.load("orders").await.unwrap(), 42, "durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_exclude_runners_of_this_process() {
    use conformance::checkpoints as suite;
    let dir = TempDir::new("leases");
    let path = dir.file("events.db");
    let checkpoints = open(&path).await.checkpoint_store();
    // Another store (and pool) on the same file, opened by a relative-looking alias.
    let other = SqliteCheckpointStore::connect(&format!("sqlite:{path}"))
        .await
        .unwrap();
    let elsewhere = open(":memory:").await.checkpoint_store();
    suite::leases_exclude_other_runners(
        Arc::new(checkpoints.clone()),
        Arc::new(other),
        Arc::new(elsewhere),
        DroppedLease::FreeAtOnce,
    )
    .await;
    suite::one_winner_among_concurrent_takers(Arc::new(checkpoints.clone())).await;

    // Racing runners, each on a pool of its own.
    let mut racers: Vec<Arc<dyn CheckpointStore>> = Vec::new();
    for _ in 0..6 {
        racers.push(Arc::new(
            SqliteCheckpointStore::connect(&path).await.unwrap(),
        ));
    }
    suite::one_lease_at_a_time_among_racing_runners(racers).await;
}

// ---- processed messages ----------------------------------------------------------------------

/// Two stores (two pools) on one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processed_messages_conform() {
    let dir = TempDir::new("processed");
    let path = dir.file("handled.db");
    let first = SqliteProcessedMessages::connect(&path).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteProcessedMessages::connect(&path).await.unwrap();
    conformance::processed::run_all(
        Arc::new(first.clone()) as Arc<dyn ProcessedMessages>,
        Arc::new(second.clone()),
    )
    .await;
    first.pool().close().await;
    second.pool().close().await;
}
