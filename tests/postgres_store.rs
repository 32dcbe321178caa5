//! The PostgreSQL stores against a real server: the conformance suites of the event,
//! snapshot and checkpoint stores (leases across pools, parked events) and processed
//! messages; migrations, the high-water mark (events that commit late are never passed
//! over), concurrency stress, typed conflicts, damaged rows, faults, notifications, spans,
//! and leases whose session ends.
//!
//! The server comes from `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Without it each test prints `skipped: DATABASE_URL not set` and passes, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1` (CI sets it): then each one fails. Every store lives in
//! a fresh schema of its own, dropped when the test succeeds.

#[path = "common/conformance/mod.rs"]
mod conformance;

use conformance::checkpoints::DroppedLease;
use conformance::eventually;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::{
    InvalidSchemaName, PING_AFTER_IDLE, PostgresCheckpointStore, PostgresEventStore,
    PostgresSnapshotStore,
};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ProjectionLease};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::snapshot::SnapshotStore;
use eventsource_runtime::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use eventsource_runtime::sqlx::{self, PgPool};
use eventsource_runtime::store::{
    BatchEnd, EventStore, ExpectedVersion, StoreError, VersionConflict,
};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::attributes::{
    SPAN_SNAPSHOT_STORE_GET, SPAN_SNAPSHOT_STORE_SAVE, SPAN_STORE_APPEND, SPAN_STORE_LOAD,
    SPAN_STORE_READ_ALL,
};
use eventsource_runtime::testing::{attribute, capture, capture_metrics, kind};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use serde_json::json;
use tokio::sync::oneshot;

// ---- helpers -------------------------------------------------------------------------------

/// The test database, or `None` (with a visible message) when there is none and none is
/// required.
fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("EVENTSOURCE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "{test}: EVENTSOURCE_REQUIRE_POSTGRES=1 but DATABASE_URL is not set; \
                     the PostgreSQL tests must run"
                );
            }
            // Straight to the process's stderr, past the test harness's capture, in one
            // write so that parallel tests do not interleave.
            let line =
                format!("{test}: skipped: DATABASE_URL not set (PostgreSQL tests need a server)\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// One test's database access: unique schemas and an application name of its own (so a
/// fault test terminates only its own connections), schemas dropped on success.
struct TestDb {
    url: String,
    /// `application_name` of this test's pools.
    app: String,
    admin: PgPool,
    schemas: Mutex<Vec<String>>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    async fn open(test: &str) -> Option<Self> {
        let url = database_url(test)?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to DATABASE_URL: {e}"));
        Some(Self {
            url,
            app: unique("es_test"),
            admin,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// A new schema name, dropped at the end.
    fn schema(&self) -> String {
        let name = unique("es_t");
        self.schemas.lock().unwrap().push(name.clone());
        name
    }

    /// A new pool of `size` connections, named after the test.
    async fn pool(&self, size: u32) -> PgPool {
        let options: PgConnectOptions = self.url.parse().unwrap();
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name(&self.app))
            .await
            .unwrap()
    }

    /// A new pool of `size` connections whose application name is this test's with
    /// `suffix` (so its backends can be told apart; `terminate_backends` spares them).
    async fn pool_named(&self, size: u32, suffix: &str) -> PgPool {
        let options: PgConnectOptions = self.url.parse().unwrap();
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name(&format!("{}_{suffix}", self.app)))
            .await
            .unwrap()
    }

    /// The backend holding a projection lease (a session-level advisory lock on one
    /// bigint key) for the pools named with `suffix`, if any.
    async fn lease_backend(&self, suffix: &str) -> Option<i32> {
        sqlx::query_scalar(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
               AND a.application_name = $1",
        )
        .bind(format!("{}_{suffix}", self.app))
        .fetch_optional(&self.admin)
        .await
        .unwrap()
    }

    /// Terminates one backend, as an administrator (or a failover) would.
    async fn terminate(&self, pid: i32) {
        let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&self.admin)
            .await
            .unwrap();
        assert!(done, "backend {pid} terminated");
    }

    /// A migrated event store on `pool`, in a new schema.
    async fn store_on(&self, pool: &PgPool) -> PostgresEventStore {
        let store = PostgresEventStore::from_pool(pool.clone())
            .with_schema(&self.schema())
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Terminates every backend of this test's pools; returns how many.
    async fn terminate_backends(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.app)
        .fetch_one(&self.admin)
        .await
        .unwrap()
    }

    async fn cleanup(self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        for schema in schemas {
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&self.admin)
                .await
                .unwrap();
        }
        self.admin.close().await;
    }
}

/// `let Some(db) = db!("name") else { return };`
macro_rules! db {
    ($test:literal) => {
        TestDb::open($test).await
    };
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, json!({ "n": n }))
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

fn positions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

// ---- conformance and migrations -------------------------------------------------------------

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
    assert_eq!(applied, [1, 2, 3, 4, 5, 6, 7, 8, 9], "each version once");
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

// ---- the high-water mark ----------------------------------------------------------------------

/// An append that holds a lower position and commits late is never passed over: `read_all`
/// stops below it (so a reader checkpointing after the later event cannot exist), then
/// returns both in order once it commits.
#[tokio::test]
async fn read_all_never_passes_over_an_event_that_commits_late() {
    let Some(db) = db!("read_all_never_passes_over_an_event_that_commits_late") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let early = store
        .append(
            &StreamId::new("S", "early"),
            ExpectedVersion::NoStream,
            events(0..1),
        )
        .await
        .unwrap();

    // Transaction A appends (position p_a) and holds.
    let mut a = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut a,
            &StreamId::new("S", "late"),
            ExpectedVersion::NoStream,
            events(1..3),
        )
        .await
        .unwrap();
    // B appends after it (position p_b > p_a) and commits at once.
    let later = store
        .append(
            &StreamId::new("S", "later"),
            ExpectedVersion::NoStream,
            events(3..4),
        )
        .await
        .unwrap();
    let (p_a, p_b) = (held.events[0].position, later.events[0].position);
    assert!(
        p_a < p_b,
        "positions {p_a} < {p_b}: B commits out of position order"
    );

    // The situation is real: B is committed and visible, A is not.
    let visible: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT position FROM \"{}\".events ORDER BY position",
        store.schema()
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(visible.contains(&(p_b as i64)) && !visible.contains(&(p_a as i64)));

    // A reader sees the events below A only, however it asks.
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&early.events));
    assert!(store.read_all(p_a, 100).await.unwrap().is_empty());
    assert!(store.read_all(p_b, 100).await.unwrap().is_empty());
    // (load is per stream and unaffected)
    assert_eq!(
        store.load(&StreamId::new("S", "later"), 1).await.unwrap(),
        later.events
    );

    a.commit().await.unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    let expected: Vec<u64> = early
        .events
        .iter()
        .chain(&held.events)
        .chain(&later.events)
        .map(|e| e.position)
        .collect();
    assert_eq!(positions(&seen), expected, "both, in position order");
    // A reader whose checkpoint was after the early event now gets A's events before B's.
    let resumed = store
        .read_all(early.events[0].position + 1, 100)
        .await
        .unwrap();
    assert_eq!(resumed[0].position, p_a);
    pool.close().await;
    db.cleanup().await;
}

/// An aborted late append leaves a gap that never fills; the reader moves past it.
#[tokio::test]
async fn an_aborted_append_is_a_gap_and_releases_the_readers() {
    let Some(db) = db!("an_aborted_append_is_a_gap_and_releases_the_readers") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let mut a = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut a,
            &StreamId::new("S", "aborted"),
            ExpectedVersion::NoStream,
            events(0..1),
        )
        .await
        .unwrap();
    let later = store
        .append(
            &StreamId::new("S", "b"),
            ExpectedVersion::NoStream,
            events(1..2),
        )
        .await
        .unwrap();
    assert!(store.read_all(0, 100).await.unwrap().is_empty());
    a.rollback().await.unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&later.events));
    assert!(held.events[0].position < seen[0].position);
    assert_eq!(
        store
            .stream_version(&StreamId::new("S", "aborted"))
            .await
            .unwrap(),
        0
    );
    pool.close().await;
    db.cleanup().await;
}

/// Only appends to the same store hold readers back: not a long transaction elsewhere in
/// the cluster, nor an append in flight in another schema.
#[tokio::test]
async fn unrelated_transactions_do_not_hold_readers_back() {
    let Some(db) = db!("unrelated_transactions_do_not_hold_readers_back") else {
        return;
    };
    let pool = db.pool(6).await;
    let store = db.store_on(&pool).await;
    let other = db.store_on(&pool).await;

    // A transaction with a transaction id, open for the whole test...
    let mut long = pool.begin().await.unwrap();
    let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *long)
        .await
        .unwrap();
    assert!(xid > 0);
    // ...and an append in flight in another store.
    let mut elsewhere = pool.begin().await.unwrap();
    other
        .append_in_transaction(
            &mut elsewhere,
            &StreamId::new("S", "x"),
            ExpectedVersion::Any,
            events(0..1),
        )
        .await
        .unwrap();

    let appended = store
        .append(&StreamId::new("S", "y"), ExpectedVersion::Any, events(1..3))
        .await
        .unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&appended.events));

    elsewhere.rollback().await.unwrap();
    long.rollback().await.unwrap();
    pool.close().await;
    db.cleanup().await;
}

/// A follower tailing `read_all` while many writers append (single events and batches)
/// gets every event exactly once, in order, without ever going back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_gets_every_event_once_under_concurrent_writers() {
    let Some(db) = db!("a_tailing_reader_gets_every_event_once_under_concurrent_writers") else {
        return;
    };
    let pool = db.pool(12).await;
    let store = db.store_on(&pool).await;
    let writers = 8u64;
    let appends = 40u64;
    let done = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new("Tail", format!("w{w}"));
            let mut count = 0;
            let mut appended = Vec::new();
            for a in 0..appends {
                let batch = 1 + (a + w) % 4;
                let sent = events(count..count + batch);
                let result = store
                    .append(&s, ExpectedVersion::Exact(count), sent)
                    .await
                    .unwrap();
                appended.extend(result.events);
                count += batch;
            }
            appended
        }));
    }
    let reader = {
        let store = store.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen: Vec<EventEnvelope> = Vec::new();
            let mut from = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(from, 7).await.unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                for e in &page {
                    assert!(e.position >= from, "read_all went back");
                }
                if let Some(last) = page.last() {
                    from = last.position + 1; // the checkpoint
                }
                seen.extend(page);
            }
        })
    };
    let mut appended = Vec::new();
    for task in tasks {
        appended.extend(task.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), appended.len());
    assert_eq!(seen, all, "the tail saw exactly what is stored, in order");
    // Each append reported the positions its events were stored at (each batch takes one
    // range of positions while other writers take theirs).
    appended.sort_by_key(|e| e.position);
    assert_eq!(
        appended, all,
        "the positions appends returned are the stored ones"
    );
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "an event was seen twice");
    pool.close().await;
    db.cleanup().await;
}

// ---- concurrency, conflicts, damaged rows ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_stress() {
    let Some(db) = db!("concurrency_stress") else {
        return;
    };
    let pool = db.pool(16).await;
    conformance::events::concurrent_writers_on_one_stream(
        Arc::new(db.store_on(&pool).await),
        32,
        25,
    )
    .await;
    conformance::events::concurrent_writers_on_many_streams(
        Arc::new(db.store_on(&pool).await),
        48,
        30,
    )
    .await;

    // Writers that expect nothing never conflict, and nothing is lost or doubled.
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Counter", "any");
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                store
                    .append(
                        &s,
                        ExpectedVersion::Any,
                        events(w * 100 + i..w * 100 + i + 2),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.load(&s, 1).await.unwrap();
    assert_eq!(stored.len(), 16 * 10 * 2);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
    // Each batch of two is contiguous in the stream.
    for pair in stored.chunks(2) {
        assert_eq!(
            pair[0].payload.to_value()["n"].as_u64().unwrap() + 1,
            pair[1].payload.to_value()["n"].as_u64().unwrap()
        );
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all, stored);
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn conflicts_are_typed_with_expected_and_actual() {
    let Some(db) = db!("conflicts_are_typed_with_expected_and_actual") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "c-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(4),
        ExpectedVersion::Exact(u64::MAX),
    ] {
        match store.append(&s, expected, events(3..4)).await {
            Err(StoreError::Conflict(conflict)) => assert_eq!(
                conflict,
                VersionConflict {
                    stream: s.clone(),
                    expected,
                    actual: 3
                }
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), 3);

    // A writer that goes around the store (a plain INSERT, uncommitted) takes version 4
    // while our append waits for it: the unique violation comes back as the same typed
    // conflict, with the actual version read again, and the store is not left locked.
    let mut raw = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO \"{}\".events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, recorded_at, payload) \
         VALUES ('Order', 'c-1', 4, gen_random_uuid(), 'Raw', 1, now(), '{{}}')",
        store.schema()
    ))
    .execute(&mut *raw)
    .await
    .unwrap();
    let racing = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            store
                .append(&s, ExpectedVersion::Exact(3), events(9..10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.commit().await.unwrap();
    match racing.await.unwrap() {
        Err(StoreError::Conflict(conflict)) => {
            assert_eq!(conflict.expected, ExpectedVersion::Exact(3));
            assert_eq!(conflict.actual, 4);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .append(&s, ExpectedVersion::Exact(4), events(4..5))
        .await
        .unwrap();
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 5);
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unreadable_rows_are_corrupt_errors_and_unstorable_values_serialize_errors() {
    let Some(db) = db!("unreadable_rows_are_corrupt_errors_and_unstorable_values_serialize_errors")
    else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "d-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();

    // NUL characters: PostgreSQL cannot store them; nothing is appended.
    for bad in [
        NewEvent::new("Bad", 1, json!({ "text": "a\u{0}b" })),
        NewEvent::new("Bad", 1, json!({ "k\u{0}": 1 })),
        NewEvent::new("Bad\u{0}", 1, json!({})),
        NewEvent::new("Bad", 1, json!({})).with_metadata(
            eventsource_runtime::event::Metadata::new().with("correlation_id", "x\u{0}"),
        ),
        // Metadata kept in its stored form (read from another tool): sent as it is. It
        // carries its trace context already, so no context written at append (with tracing
        // on) turns it into entries.
        NewEvent::new("Bad", 1, json!({})).with_metadata(
            eventsource_runtime::event::Metadata::from_json(
                r#"{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "origin": {"note": "a\u0000b"}}"#,
            )
            .unwrap(),
        ),
    ] {
        let refused = store
            .append(&s, ExpectedVersion::Exact(2), vec![event(2), bad])
            .await;
        assert!(
            matches!(refused, Err(StoreError::Serialize { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), 2);

    let damage = |sql: &str| {
        let sql = sql.replace("__events__", &format!("\"{}\".events", store.schema()));
        let pool = pool.clone();
        async move { sqlx::query(&sql).execute(&pool).await.unwrap() }
    };
    damage("UPDATE __events__ SET metadata = '[1, 2]' WHERE version = 2").await;
    let err = store.load(&s, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream, version: 2, position: 2, reason }
            if *stream == s && reason.starts_with("metadata")),
        "{err:?}"
    );
    // `read_all` returns the event before the damaged one, then names the damaged one.
    assert_eq!(positions(&store.read_all(0, 10).await.unwrap()), [1]);
    let batch = store.read_all(0, 10).await.unwrap();
    assert!(
        matches!(
            batch.end(),
            BatchEnd::Unreadable(StoreError::Corrupt { position: 2, .. })
        ),
        "the batch says why it ended: {:?}",
        batch.end()
    );
    assert!(matches!(
        store.read_all(2, 10).await,
        Err(StoreError::Corrupt {
            version: 2,
            position: 2,
            ..
        })
    ));
    assert!(store.load(&s, 1).await.is_err());
    assert_eq!(store.read_all(0, 1).await.unwrap().len(), 1);

    damage("UPDATE __events__ SET metadata = '{}', schema_version = -1 WHERE version = 2").await;
    assert!(matches!(
        store.load(&s, 2).await,
        Err(StoreError::Corrupt { version: 2, ref reason, .. }) if reason.starts_with("schema_version")
    ));
    damage("UPDATE __events__ SET schema_version = 1, payload = '\"x\"' WHERE version = 2").await;
    assert_eq!(store.load(&s, 2).await.unwrap()[0].payload, json!("x"));
    pool.close().await;
    db.cleanup().await;
}

/// A projection that records the positions it handled.
struct Seen {
    name: String,
    positions: Arc<Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Seen {
    fn name(&self) -> &str {
        &self.name
    }
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.positions.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// Issue 9's damaged database: eight good events, one whose metadata holds values that are
/// not strings (readable: they come back as JSON text), one with a negative schema version
/// (unreadable), two good ones after it, inserted with raw SQL. `read_all` returns the nine
/// before the unreadable one and then names it; a runner handles them and stops there
/// (`Stop`), or parks it in `parked_events` and goes on (`Park`), and handles it once the
/// row is repaired.
#[tokio::test]
async fn an_unreadable_row_after_good_ones_is_stopped_at_or_parked() {
    let Some(db) = db!("an_unreadable_row_after_good_ones_is_stopped_at_or_parked") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            events(0..8),
        )
        .await
        .unwrap();
    let raw = |sql: &str| {
        let sql = sql.replace("__events__", &format!("\"{}\".events", store.schema()));
        let pool = pool.clone();
        async move { sqlx::raw_sql(&sql).execute(&pool).await.unwrap() }
    };
    raw(
        "INSERT INTO __events__ (stream_type, stream_id, version, event_id, event_type, \
         schema_version, recorded_at, payload, metadata) VALUES \
         ('Order', 'legacy', 1, gen_random_uuid(), 'Imported', 1, now(), '{\"n\": 9}', \
          '{\"attempt\": 7, \"origin\": {\"app\": \"legacy\"}, \"gone\": null}'), \
         ('Order', 'legacy', 2, gen_random_uuid(), 'Imported', -1, now(), '{}', '{}')",
    )
    .await;
    store
        .append(
            &StreamId::new("Order", "o-2"),
            ExpectedVersion::NoStream,
            events(0..2),
        )
        .await
        .unwrap();

    // A metadata value that is not a string is read as its JSON text.
    let nine = &store.read_all(9, 1).await.unwrap()[0];
    assert_eq!(nine.metadata.get("attempt"), Some("7"));
    assert_eq!(nine.metadata.get("origin"), Some(r#"{"app":"legacy"}"#));
    assert_eq!(nine.metadata.get("gone"), Some("null"));

    // `read_all`: the nine good events, then the unreadable one named, then the rest.
    assert_eq!(
        positions(&store.read_all(0, 100).await.unwrap()),
        (1..=9).collect::<Vec<_>>()
    );
    let error = store.read_all(10, 100).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { position: 10, version: 2, reason, .. }
            if reason.starts_with("schema_version")),
        "{error:?}"
    );
    assert_eq!(positions(&store.read_all(11, 100).await.unwrap()), [11, 12]);

    // Stop (the default): the nine are handled, then a typed stop naming the event.
    let checkpoints = store.checkpoint_store();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runner = |policy| {
        ProjectionRunner::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Seen {
                name: "Seen".into(),
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
    // Listed by another process too.
    let elsewhere = PostgresCheckpointStore::from_pool(db.pool(1).await)
        .with_schema(store.schema())
        .unwrap();
    assert_eq!(elsewhere.parked("Seen").await.unwrap(), parked);
    assert!(elsewhere.parked("Other").await.unwrap().is_empty());

    // Repaired, the parked event is handed over and unparked.
    raw("UPDATE __events__ SET schema_version = 1 WHERE position = 10").await;
    assert!(parking.retry_parked().await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().last(), Some(&10));
    assert!(elsewhere.parked("Seen").await.unwrap().is_empty());
    assert!(!elsewhere.unpark("Seen", 10).await.unwrap());
    assert_eq!(checkpoints.load("Seen").await.unwrap(), 12);
    elsewhere.pool().close().await;
    pool.close().await;
    db.cleanup().await;
}

/// A NUL character in a stream id is one typed, non-transient error everywhere: loads and
/// version checks (which PostgreSQL used to refuse as `Unavailable`), appends (which were
/// `Serialize`), appends in the caller's transaction and the snapshot store. A NUL in the
/// event itself is still `Serialize`.
#[tokio::test]
async fn nul_in_a_stream_id_is_invalid_everywhere() {
    let Some(db) = db!("nul_in_a_stream_id_is_invalid_everywhere") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let stream = StreamId::new("Order", "o\u{0}1");
    let invalid = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::InvalidStreamId { .. })),
            "{what}: {result:?}"
        );
    };
    invalid(store.load(&stream, 1).await.map(drop), "load");
    invalid(store.stream_version(&stream).await.map(drop), "version");
    invalid(
        store
            .append(&stream, ExpectedVersion::Any, events(0..1))
            .await
            .map(drop),
        "append",
    );
    let mut tx = pool.begin().await.unwrap();
    invalid(
        store
            .append_in_transaction(&mut tx, &stream, ExpectedVersion::Any, events(0..1))
            .await
            .map(drop),
        "append in a transaction",
    );
    tx.rollback().await.unwrap();
    conformance::snapshots::nul_in_a_stream_id_is_invalid(Arc::new(store.snapshot_store())).await;

    let fine = StreamId::new("Order", "o-1");
    let refused = store
        .append(
            &fine,
            ExpectedVersion::Any,
            vec![NewEvent::new("Bad", 1, json!({ "text": "a\u{0}b" }))],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Serialize { .. })),
        "{refused:?}"
    );
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    pool.close().await;
    db.cleanup().await;
}

/// Appending in the caller's transaction commits and rolls back with it.
#[tokio::test]
async fn append_in_transaction_follows_the_callers_transaction() {
    let Some(db) = db!("append_in_transaction_follows_the_callers_transaction") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let s = StreamId::new("Order", "tx");

    let mut tx = pool.begin().await.unwrap();
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    // Its own transaction sees the events; nobody else does yet.
    let inside: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".events",
        store.schema()
    ))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(inside, 3);
    assert_eq!(store.stream_version(&s).await.unwrap(), 0);
    tx.rollback().await.unwrap();
    assert_eq!(store.stream_version(&s).await.unwrap(), 0);
    assert!(store.read_all(0, 10).await.unwrap().is_empty());

    let mut tx = pool.begin().await.unwrap();
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    // A conflict inside the transaction is typed too.
    let conflict = store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::NoStream, events(2..3))
        .await;
    assert!(matches!(
        conflict,
        Err(StoreError::Conflict(VersionConflict { actual: 2, .. }))
    ));
    store
        .append_in_transaction(&mut tx, &s, ExpectedVersion::Exact(2), events(2..3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 3);
    pool.close().await;
    db.cleanup().await;
}

// ---- faults ---------------------------------------------------------------------------------

/// `connect`'s pool pings a connection that sat idle for `PING_AFTER_IDLE` or longer before
/// handing it out: one the server dropped meanwhile (a restart, an administrator) is
/// replaced, and the append goes through.
#[tokio::test]
async fn connect_replaces_a_connection_the_server_dropped_while_it_sat_idle() {
    let Some(db) = db!("connect_replaces_a_connection_the_server_dropped_while_it_sat_idle") else {
        return;
    };
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={}", db.url, db.app);
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&db.schema())
        .unwrap();
    store.migrate().await.unwrap();
    let s = StreamId::new("Idle", "1");
    store
        .append(&s, ExpectedVersion::Exact(0), events(0..1))
        .await
        .unwrap();

    assert!(db.terminate_backends().await > 0, "the pool's connections");
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(100)).await;
    let appended = store
        .append(&s, ExpectedVersion::Exact(1), events(1..2))
        .await
        .expect("a dropped idle connection is replaced, not used");
    assert_eq!(appended.version, 2);
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 2);
    store.close().await;
    db.cleanup().await;
}

/// The database goes away under running writers (their backends are terminated, then the
/// pool is closed): appends fail with `Unavailable`, no batch is ever half stored, and a
/// new pool carries on where the data left off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_are_unavailable_errors_and_never_leave_half_a_batch() {
    let Some(db) = db!("faults_are_unavailable_errors_and_never_leave_half_a_batch") else {
        return;
    };
    const BATCH: u64 = 10;
    let pool = db.pool(6).await;
    let store = db.store_on(&pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let s = StreamId::new("Fault", format!("w{w}"));
            let (mut ok, mut unavailable) = (Vec::new(), 0u64);
            let mut batch = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let sent: Vec<NewEvent> = (0..BATCH)
                    .map(|i| NewEvent::new("Counted", 1, json!({ "batch": batch, "i": i })))
                    .collect();
                match store.append(&s, ExpectedVersion::Any, sent).await {
                    Ok(_) => ok.push(batch),
                    Err(StoreError::Unavailable(_)) => {
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(other) => panic!("a fault must be Unavailable, got {other:?}"),
                }
                batch += 1;
            }
            (s, ok, unavailable)
        }));
    }
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        db.terminate_backends().await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    store.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Closed: every operation is Unavailable, none hangs.
    assert!(matches!(
        store
            .append(
                &StreamId::new("Fault", "closed"),
                ExpectedVersion::Any,
                events(0..1)
            )
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read_all(0, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    stop.store(true, Ordering::SeqCst);

    let mut results = Vec::new();
    for writer in writers {
        results.push(writer.await.unwrap());
    }
    let failures: u64 = results.iter().map(|r| r.2).sum();
    assert!(failures > 0, "the faults did not hit any append");

    // A new pool, as after the database came back.
    let pool = db.pool(4).await;
    let back = PostgresEventStore::from_pool(pool.clone())
        .with_schema(store.schema())
        .unwrap();
    back.migrate().await.unwrap();
    let mut total = 0;
    for (s, ok, _) in &results {
        let stored = back.load(s, 1).await.unwrap();
        assert_eq!(stored.len() as u64 % BATCH, 0, "half a batch in {s}");
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64 + 1)
        );
        let mut batches = Vec::new();
        for chunk in stored.chunks(BATCH as usize) {
            let batch = chunk[0].payload.to_value()["batch"].as_u64().unwrap();
            for (i, e) in chunk.iter().enumerate() {
                assert_eq!(
                    e.payload,
                    json!({ "batch": batch, "i": i }),
                    "mixed batches"
                );
            }
            batches.push(batch);
        }
        // Every acknowledged batch is there (and an unacknowledged one may be, when the
        // connection died during its commit).
        for b in ok {
            assert!(batches.contains(b), "acknowledged batch {b} of {s} lost");
        }
        total += stored.len();
    }
    let all = back.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), total);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let s = StreamId::new("Fault", "w0");
    let version = back.stream_version(&s).await.unwrap();
    back.append(&s, ExpectedVersion::Exact(version), events(0..1))
        .await
        .unwrap();
    pool.close().await;
    db.cleanup().await;
}

// ---- notifications --------------------------------------------------------------------------

/// `appended_signal` hears other processes' appends (LISTEN/NOTIFY) and keeps hearing them
/// after its connection is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_signal_follows_other_processes_and_reconnects() {
    let Some(db) = db!("appended_signal_follows_other_processes_and_reconnects") else {
        return;
    };
    let pool = db.pool(4).await;
    let follower = db.store_on(&pool).await;
    // "Another process": its own pool, same schema.
    let other_pool = db.pool(2).await;
    let writer = PostgresEventStore::from_pool(other_pool.clone())
        .with_schema(follower.schema())
        .unwrap();
    let mut signal = follower.appended_signal().expect("postgres has a signal");
    // The listener wakes the followers once it listens.
    tokio::time::timeout(Duration::from_secs(10), signal.changed())
        .await
        .expect("the listener did not start")
        .unwrap();

    let s = StreamId::new("Signal", "1");
    let appended = writer
        .append(&s, ExpectedVersion::Any, events(0..3))
        .await
        .unwrap();
    let last = appended.events[2].position;
    tokio::time::timeout(Duration::from_secs(10), signal.wait_for(|&p| p >= last))
        .await
        .expect("no notification")
        .unwrap();

    // Kill every connection of the follower's side, the listener's included.
    assert!(db.terminate_backends().await > 0);
    let mut newest = last;
    let heard = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            newest = writer
                .append(&s, ExpectedVersion::Any, events(0..1))
                .await
                .unwrap()
                .events[0]
                .position;
            let target = newest;
            if tokio::time::timeout(
                Duration::from_millis(500),
                signal.wait_for(|&p| p >= target),
            )
            .await
            .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "no notification after the listener's connection died"
    );

    // Local appends signal too, and closing the pool stops the listener without a panic.
    follower.close().await;
    other_pool.close().await;
    pool.close().await;
    db.cleanup().await;
}

// ---- spans ----------------------------------------------------------------------------------

#[tokio::test]
async fn spans_are_client_spans_with_the_database_attributes() {
    let Some(db) = db!("spans_are_client_spans_with_the_database_attributes") else {
        return;
    };
    let pool = db.pool(2).await;
    let store = db.store_on(&pool).await;
    let options: PgConnectOptions = db.url.parse().unwrap();
    let s = StreamId::new("Order", "span-1");

    let capture = capture();
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    store.load(&s, 1).await.unwrap();
    store.read_all(0, 10).await.unwrap();
    let _ = store
        .append(&s, ExpectedVersion::NoStream, events(2..3))
        .await;
    let spans = capture.spans();

    for (name, operation) in [
        (SPAN_STORE_APPEND, "append"),
        (SPAN_STORE_LOAD, "load"),
        (SPAN_STORE_READ_ALL, "read_all"),
    ] {
        let span = spans.all(name)[0];
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("postgresql"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("events"))
        );
        assert_eq!(
            attribute(span, attr::SERVER_ADDRESS),
            Some(&string(options.get_host()))
        );
        assert_eq!(
            attribute(span, attr::SERVER_PORT),
            Some(&Value::I64(i64::from(options.get_port())))
        );
        assert_eq!(
            attribute(span, attr::DB_QUERY_TEXT),
            None,
            "query text is opt-in"
        );
        let database = options.get_database().unwrap_or(options.get_username());
        assert_eq!(
            attribute(span, attr::DB_NAMESPACE),
            Some(&string(&format!("{database}.{}", store.schema()))),
            "the database and the store's schema"
        );
    }
    let appends = spans.all(SPAN_STORE_APPEND);
    assert_eq!(appends.len(), 2);
    assert_eq!(attribute(appends[0], attr::VERSION), Some(&Value::I64(2)));
    assert_eq!(
        appends[1].status,
        opentelemetry::trace::Status::error(
            "version conflict on Order-span-1: expected no stream, stream is at version 2"
        ),
        "a conflict is an error on the span"
    );
    assert_eq!(
        attribute(appends[1], attr::ERROR_TYPE),
        Some(&string("VersionConflict")),
        "the class of error, as on the exception event"
    );
    assert_eq!(attribute(appends[0], attr::ERROR_TYPE), None);
    assert_eq!(
        attribute(spans.get(SPAN_STORE_READ_ALL), attr::EVENTS_LOADED),
        Some(&Value::I64(2))
    );
    capture.clear();

    // Opt-in query text; the switch.
    let verbose = store.clone().record_query_text(true);
    verbose.load(&s, 1).await.unwrap();
    verbose.read_all(0, 1).await.unwrap();
    let spans = capture.spans();
    let text = attribute(spans.get(SPAN_STORE_LOAD), attr::DB_QUERY_TEXT)
        .expect("query text when opted in")
        .to_string();
    assert!(text.starts_with("SELECT") && text.contains("$1"), "{text}");
    let text = attribute(spans.get(SPAN_STORE_READ_ALL), attr::DB_QUERY_TEXT)
        .unwrap()
        .to_string();
    assert!(text.contains("eventsource_read_all($1, $2)"), "{text}");
    capture.clear();
    let quiet = store.clone().enable_tracing(false);
    quiet.load(&s, 1).await.unwrap();
    assert!(capture.spans().is_empty());

    // The snapshot store's spans.
    let snapshots = store.snapshot_store();
    snapshots
        .save(conformance::snapshots::snapshot(&s, 2))
        .await
        .unwrap();
    snapshots.get(&s).await.unwrap();
    let spans = capture.spans();
    for name in [SPAN_SNAPSHOT_STORE_SAVE, SPAN_SNAPSHOT_STORE_GET] {
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("postgresql"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("snapshots"))
        );
        assert_eq!(
            attribute(span, attr::SERVER_PORT),
            Some(&Value::I64(i64::from(options.get_port())))
        );
        assert_eq!(attribute(span, attr::VERSION), Some(&Value::I64(2)));
    }
    drop(capture);
    pool.close().await;
    db.cleanup().await;
}

// ---- snapshots ------------------------------------------------------------------------------

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

// ---- checkpoints and leases -----------------------------------------------------------------

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

// ---- processed messages ---------------------------------------------------------------------

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

// ---- projection runners: lost leases ------------------------------------------------------

/// What every instance of a [`Tracker`] shares.
#[derive(Default)]
struct Tracks {
    /// Handler calls in flight, per event position.
    in_flight: Mutex<HashMap<u64, u32>>,
    /// Calls that found another call on the same event in flight.
    same_event_overlaps: AtomicU64,
    /// Calls in flight, whatever the event, and the most ever at once.
    running: AtomicU64,
    most_running: AtomicU64,
    /// Every call: (runner, position).
    calls: Mutex<Vec<(&'static str, u64)>>,
}

impl Tracks {
    fn calls_of(&self, runner: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| *r == runner)
            .count()
    }

    fn handled(&self) -> HashSet<u64> {
        self.calls.lock().unwrap().iter().map(|(_, p)| *p).collect()
    }
}

/// A projection that tracks its handler calls across runners; each call does a little
/// work (100 µs).
struct Tracker {
    name: String,
    runner: &'static str,
    tracks: Arc<Tracks>,
}

#[eventsource_runtime::async_trait]
impl Projection for Tracker {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        let tracks = &self.tracks;
        {
            let mut in_flight = tracks.in_flight.lock().unwrap();
            let calls = in_flight.entry(event.position).or_default();
            *calls += 1;
            if *calls > 1 {
                tracks.same_event_overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        let running = tracks.running.fetch_add(1, Ordering::SeqCst) + 1;
        tracks.most_running.fetch_max(running, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(100));
        tracks
            .calls
            .lock()
            .unwrap()
            .push((self.runner, event.position));
        tracks.running.fetch_sub(1, Ordering::SeqCst);
        *tracks
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&event.position)
            .unwrap() -= 1;
        Ok(())
    }
}

/// Waits (up to 30 s) until `check` holds.
async fn eventually_long(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The fault of issue 9: the first runner's lease session is terminated
/// (`pg_terminate_backend`) while it works through a backlog under load and its process
/// lives on, with a second runner waiting. The first stops before its next handler call
/// and says so; the second takes over; no event is ever handled by both at once; every
/// event is handled. Then the second's session is terminated while it follows: it takes
/// the lease again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_whose_lease_session_is_terminated_stops_and_another_takes_over() {
    let Some(db) = db!("a_runner_whose_lease_session_is_terminated_stops_and_another_takes_over")
    else {
        return;
    };
    let metrics = capture_metrics();
    let writer_pool = db.pool(4).await;
    let store = db.store_on(&writer_pool).await;
    let schema = store.schema().to_owned();
    for batch in 0..40_u64 {
        let stream = StreamId::new("Order", format!("o-{}", batch % 20));
        store
            .append(&stream, ExpectedVersion::Any, events(0..50))
            .await
            .unwrap();
    }

    let tracks = Arc::new(Tracks::default());
    let projection = unique("Tracked");
    let runner = |runner: &'static str, pool: &PgPool| {
        let events = PostgresEventStore::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap()
            .enable_tracing(false);
        let checkpoints = events.checkpoint_store();
        let tracker = Tracker {
            name: projection.clone(),
            runner,
            tracks: Arc::clone(&tracks),
        };
        ProjectionRunner::new(Arc::new(events), Arc::new(checkpoints), tracker)
            .batch_size(100)
            .poll_interval(Duration::from_millis(20))
            .lease_retry_interval(Duration::from_millis(20))
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
    };
    let (pool_a, pool_b) = (db.pool_named(4, "a").await, db.pool_named(4, "b").await);

    // The first runner works through the backlog...
    let first = runner("a", &pool_a);
    let first = tokio::spawn(async move { first.run_until_caught_up().await });
    eventually_long("the first runner under way", || tracks.calls_of("a") >= 300).await;
    // ...the second waits for the lease while writers keep appending.
    let second = runner("b", &pool_b);
    let (stop_second, second_stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(async move { second.run(second_stopped).await });
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for batch in 0..100_u64 {
                let stream = StreamId::new("Order", format!("w-{}", batch % 7));
                store
                    .append(&stream, ExpectedVersion::Any, events(0..10))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    eventually_long("the first runner deep in the backlog", || {
        tracks.calls_of("a") >= 800
    })
    .await;
    assert_eq!(tracks.calls_of("b"), 0, "the second waits");

    // The first runner's lease session is terminated; its process lives on.
    let lease = db
        .lease_backend("a")
        .await
        .expect("the first holds the lease");
    db.terminate(lease).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first runner stops by itself")
        .unwrap();
    let calls_of_first = tracks.calls_of("a");
    match stopped {
        Err(RunnerError::LeaseLost { projection: name }) => assert_eq!(name, projection),
        other => panic!("expected RunnerError::LeaseLost, got {other:?}"),
    }
    assert!(
        calls_of_first < 3_000,
        "stopped mid-stream: {calls_of_first}"
    );

    // The second takes over; then its own session is terminated while it follows.
    eventually_long("the second runner to take over", || {
        tracks.calls_of("b") > 0
    })
    .await;
    let lease = db
        .lease_backend("b")
        .await
        .expect("the second holds the lease");
    db.terminate(lease).await;
    writer.await.unwrap();
    let all: HashSet<u64> = store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(all.len(), 3_000);
    eventually_long("every event handled", || tracks.handled() == all).await;
    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();

    assert_eq!(
        tracks.same_event_overlaps.load(Ordering::SeqCst),
        0,
        "no event handled by both runners at once"
    );
    assert_eq!(
        tracks.most_running.load(Ordering::SeqCst),
        1,
        "never two handler calls at once"
    );
    assert_eq!(
        tracks.calls_of("a"),
        calls_of_first,
        "the first made no call after it stopped"
    );
    assert_eq!(
        metrics.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, &projection)]
        ),
        2,
        "both losses reported"
    );
    let checkpoints = store.checkpoint_store();
    assert_eq!(
        checkpoints.load(&projection).await.unwrap(),
        *all.iter().max().unwrap()
    );
    let total = tracks.calls.lock().unwrap().len();
    let line = format!(
        "lease loss under load: {total} handler calls for 3000 events \
         (first runner {calls_of_first}, then the second, whose lease was lost once too)\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    for pool in [pool_a, pool_b, writer_pool] {
        pool.close().await;
    }
    db.cleanup().await;
}

/// A checkpoint save as the lease's holder goes through the lease's own session, so it
/// fails once that session is gone, even before the lease has noticed.
#[tokio::test]
async fn a_leased_save_fails_once_the_session_is_gone() {
    let Some(db) = db!("a_leased_save_fails_once_the_session_is_gone") else {
        return;
    };
    let pool = db.pool_named(2, "saver").await;
    let checkpoints = PostgresCheckpointStore::from_pool(pool.clone())
        .with_schema(&db.schema())
        .unwrap();
    checkpoints.migrate().await.unwrap();
    let lease = checkpoints.try_acquire("orders").await.unwrap().unwrap();
    checkpoints.save_leased(&*lease, "orders", 5).await.unwrap();
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5);

    let backend = db.lease_backend("saver").await.unwrap();
    db.terminate(backend).await;
    // Whether or not the lease has noticed yet, nothing is saved.
    let refused = checkpoints.save_leased(&*lease, "orders", 9).await;
    assert!(
        matches!(&refused, Err(StoreError::LeaseLost { projection }) if projection == "orders"),
        "{refused:?}"
    );
    assert!(!lease.is_held());
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5);
    // A plain save (no lease) still works: the store's pool is not the lease's session.
    checkpoints.save("orders", 6).await.unwrap();
    lease.release().await;
    pool.close().await;
    db.cleanup().await;
}

/// Collects what is logged, as text.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_migration_with_nothing_to_do_logs_nothing() {
    let Some(db) = db!("a_migration_with_nothing_to_do_logs_nothing") else {
        return;
    };
    let pool = db.pool(2).await;
    let store = PostgresEventStore::from_pool(pool.clone())
        .with_schema(&db.schema())
        .unwrap();
    store.migrate().await.unwrap();
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    {
        let _default = tracing::subscriber::set_default(subscriber);
        // A second process starting on the same database: every table exists.
        store.migrate().await.unwrap();
        store.snapshot_store().migrate().await.unwrap();
        store.checkpoint_store().migrate().await.unwrap();
    }
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("already exists"), "{text}");
    assert!(!text.contains("sqlx::postgres::notice"), "{text}");
    pool.close().await;
    db.cleanup().await;
}
