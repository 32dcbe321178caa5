//! The scale bench's databases, and each measurement on them: the store's way and the
//! plain SQL way of the same work.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use eventsource_runtime::event::{NewEvent, Payload, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::snapshot::{Snapshot, SnapshotStore};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx::{self, Row};
use eventsource_runtime::store::EventStore;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::runtime::Runtime;
use tracing::Dispatch;

use crate::common::{DroppingExporter, traced_dispatch};

/// The bench's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmountDeposited {
    n: u64,
    amount: i64,
    currency: String,
    reference: String,
}

/// The loaded aggregate: a small state, so memory above it is the load's own.
#[derive(Debug, Default, Aggregate, Serialize, Deserialize)]
#[aggregate(type = "BenchAccount", events(AmountDeposited))]
pub struct Account {
    deposits: u64,
    total: i64,
}

impl Apply<AmountDeposited> for Account {
    fn apply(&mut self, event: &AmountDeposited) {
        self.deposits += 1;
        self.total += event.amount;
    }
}

/// A name no earlier run used.
fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn events(first: u64, len: u64) -> Vec<NewEvent> {
    (first..first + len)
        .map(|n| {
            NewEvent::new(
                "AmountDeposited",
                1,
                json!({ "n": n, "amount": 1250, "currency": "EUR", "reference": "bench" }),
            )
        })
        .collect()
}

fn metadata_text(event: &NewEvent) -> String {
    serde_json::to_string(&event.metadata).expect("metadata serializes")
}

/// The pipeline the `tracing_on` variants run under, made once.
fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| {
        let (dispatch, provider) = traced_dispatch(&DroppingExporter::default());
        // Kept for the process's life: dropping it would shut the pipeline down.
        std::mem::forget(provider);
        dispatch
    })
}

/// Resets the process's peak resident memory to its current one; that, in KiB.
pub fn reset_peak() -> u64 {
    // Memory freed by earlier work but kept by the allocator would otherwise be reused
    // unseen, and the peak above the start understated.
    release_free_memory();
    // "5" resets VmHWM (Linux 4.0 and later); elsewhere the peaks printed are the process's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "glibc's malloc_trim, which no crate wraps")]
fn release_free_memory() {
    unsafe extern "C" {
        /// glibc: returns the free memory at the top of the heap and in free pages to the
        /// system.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim takes any padding and only releases free memory.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// The peak resident memory since [`reset_peak`] above `base`, in KiB.
pub fn peak_above(base: u64) -> u64 {
    status_kib("VmHWM:").saturating_sub(base)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A database the bench runs on.
pub enum Db {
    Sqlite {
        store: SqliteEventStore,
        dir: PathBuf,
    },
    Postgres {
        store: PostgresEventStore,
    },
}

/// SQLite's limit of bound parameters per statement (bundled SQLite 3.46).
const SQLITE_MAX_PARAMETERS: usize = 32_766;

impl Db {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique("eventsource_bench_scale"));
        std::fs::create_dir_all(&dir).expect("create the SQLite bench directory");
        let path = dir.join("events.db");
        let store = SqliteEventStore::connect(path.to_str().expect("a UTF-8 temp path"))
            .await
            .expect("open the SQLite bench database")
            .enable_tracing(false);
        store.migrate().await.expect("migrate SQLite");
        Self::Sqlite { store, dir }
    }

    /// `None`, with a note, when `DATABASE_URL` is unset.
    pub async fn postgres() -> Option<Self> {
        let Some(url) = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
        else {
            eprintln!("scale bench: PostgreSQL skipped: DATABASE_URL not set");
            return None;
        };
        let schema = unique("es_scale");
        let store = PostgresEventStore::connect(&url)
            .await
            .expect("connect to DATABASE_URL")
            .with_schema(&schema)
            .expect("a valid schema name")
            .enable_tracing(false);
        store.migrate().await.expect("migrate PostgreSQL");
        Some(Self::Postgres { store })
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite { store, dir } => {
                store.close().await;
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { store } => {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema());
                let _ = sqlx::raw_sql(&drop).execute(store.pool()).await;
                store.close().await;
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    fn store(&self, tracing: bool) -> Box<dyn EventStore> {
        match self {
            Self::Sqlite { store, .. } => Box::new(store.clone().enable_tracing(tracing)),
            Self::Postgres { store } => Box::new(store.clone().enable_tracing(tracing)),
        }
    }

    /// One append of `n` events to a new stream by the store.
    pub async fn append_store(&self, n: u64, tracing: bool) -> Duration {
        let store = self.store(tracing);
        let stream = StreamId::new("BenchAppend", unique("append"));
        let events = events(0, n);
        let start = Instant::now();
        let appended = store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .expect("append");
        let elapsed = start.elapsed();
        assert_eq!(appended.version, n);
        elapsed
    }

    /// [`append_store`](Self::append_store) with tracing on, under the bench's pipeline.
    pub fn append_traced(&self, rt: &Runtime, n: u64) -> Duration {
        tracing::dispatcher::with_default(dispatch(), || rt.block_on(self.append_store(n, true)))
    }

    /// The same rows as [`append_store`](Self::append_store), by plain SQL in one
    /// transaction.
    pub async fn append_plain(&self, n: u64) -> Duration {
        let stream = StreamId::new("BenchAppend", unique("plain"));
        let events = events(0, n);
        let start = Instant::now();
        match self {
            Self::Sqlite { store, .. } => sqlite_plain(store, &stream, &events).await,
            Self::Postgres { store } => postgres_plain(store, &stream, &events).await,
        }
        start.elapsed()
    }

    /// A stream of `n` events for the loads; its aggregate id.
    pub async fn fill(&self, n: u64) -> String {
        let store = self.store(false);
        let id = unique("account");
        let stream = StreamId::new("BenchAccount", id.clone());
        for first in (0..n).step_by(1_000) {
            let len = (n - first).min(1_000);
            store
                .append(&stream, ExpectedVersion::Exact(first), events(first, len))
                .await
                .expect("fill the long stream");
        }
        if let Self::Postgres { store } = self {
            // Vacuumed and analyzed now, so autovacuum does not start on the new rows in
            // the middle of the timed loads.
            let settle = format!("VACUUM ANALYZE \"{}\".events", store.schema());
            sqlx::raw_sql(&settle)
                .execute(store.pool())
                .await
                .expect("vacuum the filled table");
        }
        id
    }

    fn repository(&self) -> Repository<Account> {
        let store = self.store(false);
        Repository::<Account>::from_arc(store.into())
            .enable_tracing(false)
            .with_cache(0)
    }

    /// A repository load of the aggregate `id` (no snapshot, no cache).
    pub async fn load_repository(&self, id: &str, n: u64) -> Duration {
        let repository = self.repository();
        let start = Instant::now();
        let root = repository.load(id).await.expect("load");
        let elapsed = start.elapsed();
        assert_eq!((root.version(), root.state().deposits), (n, n));
        elapsed
    }

    /// `EventStore::load` of the whole stream: the store's read and decoding, without the
    /// repository's paging and applying.
    pub async fn load_store(&self, id: &str, n: u64) -> Duration {
        let store = self.store(false);
        let stream = StreamId::new("BenchAccount", id.to_owned());
        let start = Instant::now();
        let loaded = store.load(&stream, 1).await.expect("load");
        let elapsed = start.elapsed();
        assert_eq!(loaded.len() as u64, n);
        elapsed
    }

    /// A raw read of the same rows, streamed, each decoded and applied by hand.
    pub async fn load_raw(&self, id: &str, n: u64) -> Duration {
        let start = Instant::now();
        let mut state = Account::default();
        match self {
            Self::Sqlite { store, .. } => {
                let mut rows = sqlx::query(
                    "SELECT position, stream_type, stream_id, version, event_id, event_type, \
                     schema_version, timestamp, payload, metadata FROM events \
                     WHERE stream_type = ?1 AND stream_id = ?2 AND version >= 1 ORDER BY version",
                )
                .bind("BenchAccount")
                .bind(id)
                .fetch(store.pool());
                while let Some(row) = rows.try_next().await.expect("read") {
                    let _: uuid::Uuid = row.get::<&str, _>("event_id").parse().expect("uuid");
                    let _ = DateTime::parse_from_rfc3339(row.get::<&str, _>("timestamp"))
                        .expect("timestamp");
                    let _: &str = row.get("metadata");
                    let event: AmountDeposited =
                        serde_json::from_str(row.get::<&str, _>("payload")).expect("payload");
                    state.apply(&event);
                }
            }
            Self::Postgres { store } => {
                let sql = format!(
                    "SELECT position, stream_type, stream_id, version, event_id, event_type, \
                     schema_version, recorded_at, recorded_at_nanos, payload::text AS payload, \
                     metadata::text AS metadata FROM \"{}\".events \
                     WHERE stream_type = $1 AND stream_id = $2 AND version >= 1 ORDER BY version",
                    store.schema()
                );
                let mut rows = sqlx::query(&sql)
                    .bind("BenchAccount")
                    .bind(id)
                    .fetch(store.pool());
                while let Some(row) = rows.try_next().await.expect("read") {
                    let _: uuid::Uuid = row.get("event_id");
                    let _: DateTime<Utc> = row.get("recorded_at");
                    let _: &str = row.get("metadata");
                    let event: AmountDeposited =
                        serde_json::from_str(row.get::<&str, _>("payload")).expect("payload");
                    state.apply(&event);
                }
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(state.deposits, n);
        elapsed
    }

    /// A snapshot load right after a full load of the same stream, and the next one.
    pub async fn snapshot_load_after_full(&self, id: &str) -> Option<(Duration, Duration)> {
        let full = self.repository().load(id).await.expect("full load");
        let snapshots: Arc<dyn SnapshotStore> = match self {
            Self::Sqlite { store, .. } => Arc::new(store.snapshot_store()),
            Self::Postgres { store } => Arc::new(store.snapshot_store()),
        };
        let snapshot = Snapshot {
            stream: full.stream().clone(),
            version: full.version(),
            state: Payload::from_serialize(full.state()).expect("state serializes"),
            schema_version: Account::SNAPSHOT_VERSION,
            taken_at: Utc::now(),
        };
        snapshots.save(snapshot).await.expect("save the snapshot");
        let with_snapshots = self.repository().with_snapshots(snapshots, 1_000_000);
        // The full load again, then the snapshot loads right after it.
        drop(self.repository().load(id).await.expect("full load"));
        let mut times = [Duration::ZERO; 2];
        for time in &mut times {
            let start = Instant::now();
            let root = with_snapshots.load(id).await.expect("snapshot load");
            *time = start.elapsed();
            assert_eq!(root.version(), full.version());
        }
        Some((times[0], times[1]))
    }
}

/// Multi-row `INSERT`s, as many rows per statement as SQLite's parameter limit allows.
async fn sqlite_plain(store: &SqliteEventStore, stream: &StreamId, events: &[NewEvent]) {
    const COLUMNS: usize = 9;
    let mut tx = store
        .pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("begin");
    let per_statement = SQLITE_MAX_PARAMETERS / COLUMNS;
    for (chunk_index, chunk) in events.chunks(per_statement).enumerate() {
        let mut sql = String::from(
            "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
             schema_version, timestamp, payload, metadata) VALUES ",
        );
        for row in 0..chunk.len() {
            if row > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?)");
        }
        let mut query = sqlx::query(&sql);
        for (offset, event) in chunk.iter().enumerate() {
            let version = (chunk_index * per_statement + offset + 1) as i64;
            query = query
                .bind(stream.aggregate_type())
                .bind(stream.aggregate_id())
                .bind(version)
                .bind(event.event_id.to_string())
                .bind(event.event_type.as_ref())
                .bind(i64::from(event.schema_version))
                .bind(event.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true))
                .bind(event.payload.as_str())
                .bind(metadata_text(event));
        }
        query.execute(&mut *tx).await.expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// One `INSERT ... SELECT FROM unnest(...)` of every row.
async fn postgres_plain(store: &PostgresEventStore, stream: &StreamId, events: &[NewEvent]) {
    let sql = format!(
        "INSERT INTO \"{}\".events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, recorded_at, recorded_at_nanos, payload, metadata) \
         SELECT $1, $2, r.version, r.event_id, r.event_type, r.schema_version, r.recorded_at, \
                r.nanos, r.payload, r.metadata \
           FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::bigint[], $7::timestamptz[], \
                       $8::int[], $9::text[]::jsonb[], $10::text[]::jsonb[]) \
                AS r(version, event_id, event_type, schema_version, recorded_at, nanos, \
                     payload, metadata)",
        store.schema()
    );
    let versions: Vec<i64> = (1..=events.len() as i64).collect();
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_ref()).collect();
    let schema_versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
    let (recorded_at, nanos): (Vec<DateTime<Utc>>, Vec<i32>) = events
        .iter()
        .map(|e| {
            let nanos = e.timestamp.timestamp_subsec_nanos() % 1000;
            (
                e.timestamp - TimeDelta::nanoseconds(i64::from(nanos)),
                nanos as i32,
            )
        })
        .unzip();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let metadata: Vec<String> = events.iter().map(metadata_text).collect();
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query(&sql)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .bind(versions)
        .bind(ids)
        .bind(types)
        .bind(schema_versions)
        .bind(recorded_at)
        .bind(nanos)
        .bind(payloads)
        .bind(metadata)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
}
