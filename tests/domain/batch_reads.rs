//! `EventStore::read_all_batches` on the SQL stores: a damaged row stops the batches where
//! `read_all` stops (SQLite and PostgreSQL); on PostgreSQL, whose reader streams its batches
//! from queries below the high-water mark, an append that commits late is never passed
//! over, a reader dropped in the middle of a query leaves its connection usable, a reader
//! never takes a pool's last connection, each batch has its `read_all` span, and a
//! projection rebuilt over the streamed batches sees every event once, in order. On SQLite,
//! whose reader has the next page written while the one before is decoded, the same: each
//! batch in its `read_all` span, every event once and in order (on one connection and on
//! several), past a parked event too.
//!
//! PostgreSQL from `DATABASE_URL` (skipped without it, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1`).

use crate::conformance;
use crate::postgres;

use std::sync::{Arc, Mutex};

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore, ExpectedVersion, LogReader, UNBOUNDED};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::attributes::SPAN_STORE_READ_ALL;
use eventsource_runtime::testing::{SpanCapture, attribute, capture};
use opentelemetry::Value;
use postgres::TestDb;
use serde_json::json;

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range
        .map(|n| NewEvent::new("Counted", 1, json!({ "n": n })))
        .collect()
}

fn positions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// `count` events in streams of 50.
async fn fill(store: &dyn EventStore, count: u64) {
    for first in (0..count).step_by(50) {
        store
            .append(
                &StreamId::new("Fill", format!("f-{first}")),
                ExpectedVersion::NoStream,
                events(first..(first + 50).min(count)),
            )
            .await
            .unwrap();
    }
}

/// Reads batches until one reaches the head; their events.
async fn to_head(reader: &mut dyn LogReader) -> Vec<EventEnvelope> {
    let mut read = Vec::new();
    loop {
        let batch = reader.next_batch().await.unwrap();
        let head = batch.reached_head();
        read.extend(batch);
        if head {
            return read;
        }
    }
}

/// Fills `store` with 300 events and reads them in batches of 64 to the head, each batch in
/// its `read_all` span (its first position, the limit, the events loaded); the reader.
async fn read_300_in_spans(store: &dyn EventStore) -> Box<dyn LogReader + '_> {
    fill(store, 300).await;
    let capture = capture();
    let mut reader = store.read_all_batches(1, 64);
    let read = to_head(&mut *reader).await;
    assert_eq!(positions(&read), (1..=300).collect::<Vec<_>>());
    assert_eq!(
        read_all_spans(&capture),
        [
            (1, 64, 64),
            (65, 64, 64),
            (129, 64, 64),
            (193, 64, 64),
            (257, 64, 44)
        ]
    );
    reader
}

/// Each `read_all` span captured: its first position, limit and events loaded.
fn read_all_spans(capture: &SpanCapture) -> Vec<(i64, i64, i64)> {
    let spans = capture.spans();
    let int = |span, key| match attribute(span, key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key}: {other:?}"),
    };
    spans
        .all(SPAN_STORE_READ_ALL)
        .iter()
        .map(|span| {
            (
                int(span, attr::EVENT_POSITION),
                int(span, attr::READ_LIMIT),
                int(span, attr::EVENTS_LOADED),
            )
        })
        .collect()
}

#[tokio::test]
async fn sqlite_batches_stop_at_an_unreadable_event() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    conformance::reader::batches_stop_at_an_unreadable_event(Arc::new(store), async |position| {
        sqlx::query("UPDATE events SET payload = '{not json' WHERE position = ?1")
            .bind(i64::try_from(position).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_stop_at_an_unreadable_event() {
    let Some(db) = TestDb::open("postgres_batches_stop_at_an_unreadable_event").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let table = format!("\"{}\".events", store.schema());
    conformance::reader::batches_stop_at_an_unreadable_event(Arc::new(store), async |position| {
        sqlx::query(&format!(
            "UPDATE {table} SET metadata = '[1, 2]' WHERE position = $1"
        ))
        .bind(i64::try_from(position).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    })
    .await;
    pool.close().await;
    db.cleanup().await;
}

/// The reader streams below the mark it knows and pages past it: an append holding lower
/// positions while a later one commits stops the batches below it, and both come in
/// position order once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_read_never_passes_over_an_event_that_commits_late() {
    let Some(db) =
        TestDb::open("a_streamed_read_never_passes_over_an_event_that_commits_late").await
    else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    fill(&store, 1_000).await;
    let mut reader = store.read_all_batches(1, 64);
    // The first batch learns the high-water mark; the next ones stream below it.
    let first = reader.next_batch().await.unwrap();
    assert_eq!(positions(&first), (1..=64).collect::<Vec<_>>());

    let mut late = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut late,
            &StreamId::new("S", "late"),
            ExpectedVersion::NoStream,
            events(0..2),
        )
        .await
        .unwrap();
    let later = store
        .append(
            &StreamId::new("S", "later"),
            ExpectedVersion::NoStream,
            events(2..5),
        )
        .await
        .unwrap();
    assert!(held.events[0].position < later.events[0].position);

    let below = to_head(&mut *reader).await;
    assert_eq!(positions(&below), (65..=1_000).collect::<Vec<_>>());
    assert!(reader.next_batch().await.unwrap().is_empty(), "still held");

    late.commit().await.unwrap();
    let rest = to_head(&mut *reader).await;
    let expected: Vec<u64> = held
        .events
        .iter()
        .chain(&later.events)
        .map(|e| e.position)
        .collect();
    assert_eq!(positions(&rest), expected, "both, in position order");
    pool.close().await;
    db.cleanup().await;
}

/// A reader dropped while its query still has rows leaves the connection to the pool, which
/// reads the rest before its next statement; a reader on a pool of one connection never
/// holds it between batches (it pages), so other work goes on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_leave_the_pool_usable() {
    let Some(db) = TestDb::open("readers_leave_the_pool_usable").await else {
        return;
    };
    let pool = db.pool(3).await;
    let store = db.store_in(&pool, &db.schema()).await;
    fill(&store, 2_000).await;
    let whole = store.read_all(1, UNBOUNDED).await.unwrap().into_events();
    for _ in 0..3 {
        let mut reader = store.read_all_batches(1, 100);
        for _ in 0..3 {
            assert_eq!(reader.next_batch().await.unwrap().len(), 100);
        }
        drop(reader);
        // Every connection again, each with a statement of its own.
        let reads = (0..3).map(|_| store.read_all(1, UNBOUNDED));
        for read in futures_util::future::join_all(reads).await {
            assert_eq!(read.unwrap().into_events(), whole);
        }
    }

    let single = db.pool(1).await;
    let store = PostgresEventStore::from_pool(single.clone())
        .with_schema(store.schema())
        .unwrap();
    let mut reader = store.read_all_batches(1, 100);
    let mut read = Vec::new();
    for n in 0..20 {
        read.extend(reader.next_batch().await.unwrap());
        // With the only connection held by the reader, this would wait for it.
        store
            .append(
                &StreamId::new("Beside", "b-1"),
                ExpectedVersion::Any,
                events(n..n + 1),
            )
            .await
            .unwrap();
    }
    read.extend(to_head(&mut *reader).await);
    assert_eq!(read[..2_000], whole[..]);
    assert_eq!(read.len(), 2_020);
    single.close().await;
    pool.close().await;
    db.cleanup().await;
}

/// Each batch of a streamed read is in its own `read_all` span, as the `read_all` it stands
/// for: its first position, the limit, the events loaded.
#[tokio::test]
async fn each_streamed_batch_has_its_read_all_span() {
    let Some(db) = TestDb::open("each_streamed_batch_has_its_read_all_span").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    read_300_in_spans(&store).await;
    pool.close().await;
    db.cleanup().await;
}

/// Records the positions it handles.
struct Positions {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Positions {
    fn name(&self) -> &str {
        "Positions"
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().push(event.position);
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().clear();
        Ok(())
    }
}

/// A runner of [`Positions`] over `store` and `checkpoints`, `batch_size` events a batch;
/// the positions it handles.
fn positions_runner(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    batch_size: usize,
) -> (ProjectionRunner<Positions>, Arc<Mutex<Vec<u64>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let positions = Positions {
        seen: Arc::clone(&seen),
    };
    let runner = ProjectionRunner::new(store, checkpoints, positions).batch_size(batch_size);
    (runner, seen)
}

/// A rebuild reads ahead through the streamed batches: every event once, in order, stopping
/// below an append in flight and going on from there once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_over_streamed_batches_sees_every_event_once_in_order() {
    let Some(db) =
        TestDb::open("a_rebuild_over_streamed_batches_sees_every_event_once_in_order").await
    else {
        return;
    };
    let pool = db.pool(6).await;
    let store = db.store_in(&pool, &db.schema()).await;
    fill(&store, 3_000).await;
    let mut late = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut late,
            &StreamId::new("S", "late"),
            ExpectedVersion::NoStream,
            events(0..2),
        )
        .await
        .unwrap();
    fill_after(&store, 500).await;
    let (runner, seen) = positions_runner(
        Arc::new(store.clone()),
        Arc::new(store.checkpoint_store()),
        50,
    );
    assert_eq!(runner.rebuild().await.unwrap(), 3_000);
    assert_eq!(*seen.lock().unwrap(), (1..=3_000).collect::<Vec<_>>());

    late.commit().await.unwrap();
    let end = runner.run_until_caught_up().await.unwrap();
    let all = positions(&store.read_all(1, UNBOUNDED).await.unwrap());
    assert_eq!(end, *all.last().unwrap());
    assert_eq!(*seen.lock().unwrap(), all, "every event once, in order");
    assert_eq!(all.len(), 3_502);
    assert_eq!(all[3_000], held.events[0].position);
    pool.close().await;
    db.cleanup().await;
}

/// `count` events appended after the others, in streams of 50.
async fn fill_after(store: &dyn EventStore, count: u64) {
    for first in (0..count).step_by(50) {
        store
            .append(
                &StreamId::new("After", format!("a-{first}")),
                ExpectedVersion::NoStream,
                events(first..(first + 50).min(count)),
            )
            .await
            .unwrap();
    }
}

/// A SQLite store's batches come from pages read ahead (SQLite writes the next page while
/// the one before is decoded): each in its own `read_all` span, as the `read_all` it stands
/// for, on a database of one connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sqlite_batch_read_ahead_has_its_read_all_span() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let mut reader = read_300_in_spans(&store).await;
    // Caught up, the reader reads again from where it stopped, and finds what came since.
    fill_after(&store, 70).await;
    let more = to_head(&mut *reader).await;
    assert_eq!(positions(&more), (301..=370).collect::<Vec<_>>());
}

/// A rebuild on SQLite over pages read ahead sees every event once, in order, on a file
/// database (a pool of several connections) as on one in memory (one connection), and
/// goes on with the events appended after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_rebuild_over_pages_read_ahead_sees_every_event_once_in_order() {
    let dir = std::env::temp_dir().join(format!(
        "eventsource_pages_ahead_{}_{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.db");
    for location in [":memory:", file.to_str().unwrap()] {
        let store = SqliteEventStore::connect(location).await.unwrap();
        store.migrate().await.unwrap();
        fill(&store, 3_000).await;
        let (runner, seen) = positions_runner(
            Arc::new(store.clone()),
            Arc::new(store.checkpoint_store()),
            50,
        );
        assert_eq!(runner.rebuild().await.unwrap(), 3_000, "{location}");
        assert_eq!(*seen.lock().unwrap(), (1..=3_000).collect::<Vec<_>>());

        fill_after(&store, 520).await;
        assert_eq!(runner.run_until_caught_up().await.unwrap(), 3_520);
        assert_eq!(
            *seen.lock().unwrap(),
            (1..=3_520).collect::<Vec<_>>(),
            "{location}: every event once, in order"
        );
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// An unreadable event in a page read ahead: the rebuild parks it and goes on, the pages
/// after it read ahead again from the event after it: every other event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_rebuild_goes_on_past_a_parked_event_in_a_page_read_ahead() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    fill(&store, 500).await;
    sqlx::query("UPDATE events SET event_type = CAST('Counted' AS BLOB) WHERE position = 130")
        .execute(store.pool())
        .await
        .unwrap();
    let (runner, seen) = positions_runner(
        Arc::new(store.clone()),
        Arc::new(store.checkpoint_store()),
        64,
    );
    let runner = runner.on_unreadable(UnreadablePolicy::Park);
    runner.rebuild().await.unwrap();
    let expected: Vec<u64> = (1..=500).filter(|&p| p != 130).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    let parked = runner.parked().await.unwrap();
    assert_eq!(parked.iter().map(|p| p.position).collect::<Vec<_>>(), [130]);
}
