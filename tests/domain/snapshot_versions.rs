//! Snapshots carry the aggregate's `SNAPSHOT_VERSION`: a repository ignores a snapshot of
//! another version (one warning, a full replay, `eventsource.snapshot.used = false`) and
//! replaces it with one of its own, on the in-memory, SQLite and PostgreSQL stores; a
//! database migrated from before the column reads its snapshots as version 1; a stored
//! version that is no `u32` is an unreadable snapshot (no snapshot), never a panic.
//!
//! PostgreSQL comes from `DATABASE_URL` (see `tests/common/postgres.rs`).

use crate::conformance;
use crate::postgres;

use std::sync::Arc;

use eventsource_runtime::postgres::{
    PostgresSnapshotStore, SCHEMA, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::snapshot::{InMemorySnapshotStore, SnapshotStore};
use eventsource_runtime::sqlite::{self, SqliteEventStore};
use eventsource_runtime::sqlx;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{SpanCapture, attribute, capture};
use opentelemetry::Value;
use postgres::TestDb;
use serde::{Deserialize, Serialize};

// ---- Two versions of one aggregate: the same type name and events, another snapshot version.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Added {
    amount: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(type = "Tally", events(Added))]
struct Tally {
    total: i64,
    history: Vec<i64>,
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
        self.history.push(event.amount);
    }
}

/// The tally after its state's serialized shape changed: `snapshot_version = 2`, with
/// `Tally`'s events. (Its JSON is still `Tally`'s, so only the version tells an old snapshot
/// apart.)
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(type = "Tally", event = TallyEvent, snapshot_version = 2)]
struct TallyV2 {
    total: i64,
    history: Vec<i64>,
}

impl Apply<TallyEvent> for TallyV2 {
    fn apply(&mut self, event: &TallyEvent) {
        match event {
            TallyEvent::Added(added) => {
                self.total += added.amount;
                self.history.push(added.amount);
            }
        }
    }
}

/// The WARN lines logged in the captured spans.
fn warnings(capture: &SpanCapture) -> Vec<(String, Vec<opentelemetry::KeyValue>)> {
    let warn = Value::String("WARN".into());
    let spans = capture.spans();
    spans
        .0
        .iter()
        .flat_map(|span| span.events.iter())
        .filter(|e| {
            e.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "level" && kv.value == warn)
        })
        .map(|e| (e.name.to_string(), e.attributes.clone()))
        .collect()
}

/// A snapshot taken at version 1 is ignored by a repository of `SNAPSHOT_VERSION` 2 (one
/// warning naming the stream and both versions, a full replay), which replaces it with one
/// of version 2 that its next load uses.
async fn a_snapshot_of_another_version_is_replayed_and_replaced(
    capture: &SpanCapture,
    events: Arc<dyn EventStore>,
    snapshots: Arc<dyn SnapshotStore>,
) {
    assert_eq!((Tally::SNAPSHOT_VERSION, TallyV2::SNAPSHOT_VERSION), (1, 2));
    let v1 = Repository::<Tally>::from_arc(Arc::clone(&events))
        .with_cache(0)
        .with_snapshots(Arc::clone(&snapshots), 3);
    let mut tally = v1.load("t-1").await.unwrap();
    for amount in [1, 2, 3] {
        tally.record(Added { amount });
    }
    v1.save(&mut tally).await.unwrap(); // snapshot at 3, schema version 1
    let mut tally = v1.load("t-1").await.unwrap();
    tally.record(Added { amount: 4 });
    v1.save(&mut tally).await.unwrap(); // 4: no snapshot
    let stream = Repository::<Tally>::stream("t-1");
    let taken = snapshots.get(&stream).await.unwrap().unwrap();
    assert_eq!((taken.version, taken.schema_version), (3, 1));

    let v2 = Repository::<TallyV2>::from_arc(events)
        .with_cache(0)
        .with_snapshots(Arc::clone(&snapshots), 3);
    capture.clear();
    let loaded = v2.load("t-1").await.expect("never an error");
    assert_eq!(loaded.version(), 4);
    assert_eq!(loaded.state().total, 10, "the full replay");
    assert_eq!(loaded.state().history, [1, 2, 3, 4]);
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(false))
    );
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&Value::I64(4)));
    let warned = warnings(capture);
    assert_eq!(warned.len(), 1, "exactly one warning: {warned:?}");
    let (line, fields) = &warned[0];
    assert!(
        line.contains("ignoring a snapshot of schema version 1")
            && line.contains("SNAPSHOT_VERSION is 2")
            && line.contains("replayed from its events"),
        "{line}"
    );
    let field = |key: &str| {
        fields
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(field("stream"), Some(stream.to_string()));
    assert_eq!(field("snapshot_version").as_deref(), Some("1"));
    assert_eq!(field("aggregate_version").as_deref(), Some("2"));

    // Replaced by a snapshot of the replayed state at version 2, which the next load uses.
    let replaced = snapshots.get(&stream).await.unwrap().unwrap();
    assert_eq!((replaced.version, replaced.schema_version), (4, 2));
    assert_eq!(replaced.state.to_value()["total"], 10);
    capture.clear();
    assert_eq!(v2.load("t-1").await.unwrap().state().total, 10);
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(true))
    );
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&Value::I64(0)));
    assert!(warnings(capture).is_empty(), "{:?}", warnings(capture));
}

#[tokio::test]
async fn in_memory_a_snapshot_of_another_version_is_replayed_and_replaced() {
    // Every test here captures before its first span (see the note in tests/domain/alone/snapshots.rs).
    let capture = capture();
    a_snapshot_of_another_version_is_replayed_and_replaced(
        &capture,
        Arc::new(InMemoryEventStore::new()),
        Arc::new(InMemorySnapshotStore::new()),
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_snapshot_of_another_version_is_replayed_and_replaced() {
    let capture = capture();
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let snapshots = Arc::new(store.snapshot_store());
    a_snapshot_of_another_version_is_replayed_and_replaced(&capture, Arc::new(store), snapshots)
        .await;
}

/// `let Some(db) = db!("name") else { return };`
macro_rules! db {
    ($test:literal) => {
        TestDb::open($test).await
    };
}

#[tokio::test]
async fn postgres_a_snapshot_of_another_version_is_replayed_and_replaced() {
    let Some(db) = db!("postgres_a_snapshot_of_another_version_is_replayed_and_replaced") else {
        return;
    };
    let capture = capture();
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let snapshots = Arc::new(store.snapshot_store());
    a_snapshot_of_another_version_is_replayed_and_replaced(&capture, Arc::new(store), snapshots)
        .await;
    pool.close().await;
    db.cleanup().await;
}

// ---- Migration: a snapshot stored before the column reads as version 1. ----------------------

#[tokio::test]
async fn sqlite_a_snapshot_from_schema_v3_reads_as_version_1() {
    let _capture = capture();
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    let pool = store.pool();
    // A database as `migrate()` left it at version 3.
    sqlx::raw_sql(
        "CREATE TABLE eventsource_schema_migrations (\
             version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
    for (version, sql) in [
        (1, sqlite::SCHEMA),
        (2, sqlite::SCHEMA_V2),
        (3, sqlite::SCHEMA_V3),
    ] {
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO eventsource_schema_migrations VALUES (?1, '2025-01-01T00:00:00Z')",
        )
        .bind(version)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO snapshots (stream_type, stream_id, version, state, taken_at) \
         VALUES ('Tally', 't-old', 5, '{\"total\":5}', '2025-01-01T00:00:00.000000000Z')",
    )
    .execute(pool)
    .await
    .unwrap();

    store.migrate().await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM eventsource_schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
    let snapshots = store.snapshot_store();
    let old = snapshots
        .get(&StreamId::new("Tally", "t-old"))
        .await
        .unwrap()
        .expect("the stored snapshot");
    assert_eq!((old.version, old.schema_version), (5, 1));
    assert_eq!(old.state.to_value()["total"], 5);
}

#[tokio::test]
async fn postgres_a_snapshot_from_schema_v6_reads_as_version_1() {
    let Some(db) = db!("postgres_a_snapshot_from_schema_v6_reads_as_version_1") else {
        return;
    };
    let _capture = capture();
    let pool = db.pool(2).await;
    let schema = db.schema();
    let quoted = format!("\"{schema}\"");
    // A schema as `migrate()` left it at version 6.
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {quoted}; CREATE TABLE {quoted}.eventsource_schema_migrations (\
             version bigint NOT NULL PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let versions = [
        SCHEMA, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6,
    ];
    for (version, sql) in (1_i64..).zip(versions) {
        sqlx::raw_sql(&sql.replace("__schema__", &quoted))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!(
            "INSERT INTO {quoted}.eventsource_schema_migrations (version) VALUES ($1)"
        ))
        .bind(version)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::raw_sql(&format!(
        "INSERT INTO {quoted}.snapshots (stream_type, stream_id, version, state, taken_at) \
         VALUES ('Tally', 't-old', 5, '{{\"total\": 5}}', '2025-01-01T00:00:00Z')"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let snapshots = PostgresSnapshotStore::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap();
    snapshots.migrate().await.unwrap();
    let applied: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {quoted}.eventsource_schema_migrations ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        applied,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "every later version applied once"
    );
    let old = snapshots
        .get(&StreamId::new("Tally", "t-old"))
        .await
        .unwrap()
        .expect("the stored snapshot");
    assert_eq!((old.version, old.schema_version), (5, 1));
    assert_eq!(old.state.to_value()["total"], 5);
    pool.close().await;
    db.cleanup().await;
}

// ---- A stored schema version that is no u32: an unreadable snapshot. ----------------------

#[tokio::test]
async fn sqlite_a_schema_version_beyond_u32_is_an_unreadable_snapshot() {
    let _capture = capture();
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    for bad in [-1, i64::from(u32::MAX) + 1] {
        conformance::snapshots::an_unreadable_snapshot_is_no_snapshot(
            Arc::new(store.snapshot_store()),
            async |_| {
                sqlx::query("UPDATE snapshots SET schema_version = ?1")
                    .bind(bad)
                    .execute(&pool)
                    .await
                    .unwrap();
            },
        )
        .await;
    }
}

#[tokio::test]
async fn postgres_a_schema_version_beyond_u32_is_an_unreadable_snapshot() {
    let Some(db) = db!("postgres_a_schema_version_beyond_u32_is_an_unreadable_snapshot") else {
        return;
    };
    let _capture = capture();
    let pool = db.pool(2).await;
    let schema = db.schema();
    let store = db.store_in(&pool, &schema).await;
    for bad in [-1, i64::from(u32::MAX) + 1] {
        conformance::snapshots::an_unreadable_snapshot_is_no_snapshot(
            Arc::new(store.snapshot_store()),
            async |_| {
                sqlx::query(&format!(
                    "UPDATE \"{schema}\".snapshots SET schema_version = $1"
                ))
                .bind(bad)
                .execute(&pool)
                .await
                .unwrap();
            },
        )
        .await;
    }
    pool.close().await;
    db.cleanup().await;
}
