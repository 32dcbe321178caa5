//! The SQLite stores (feature `sqlite`): events, snapshots and projection checkpoints in one
//! embedded database file, through [sqlx](https://docs.rs/sqlx) with runtime queries.
//!
//! SQLite fits when one process on one machine is enough. The three stores share one
//! schema, [`SCHEMA`], which `migrate()` on any of them applies as a whole (idempotent: run
//! it at every start, from any of the stores, as often as you like):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `events` | `position INTEGER PRIMARY KEY AUTOINCREMENT`, `UNIQUE (stream_type, stream_id, version)` | event id, event type, schema version, timestamp (RFC 3339 text), JSON payload and metadata |
//! | `snapshots` | `(stream_type, stream_id)` | the newest snapshot per stream |
//! | `checkpoints` | `projection` | each projection's checkpoint |
//!
//! Applied versions are recorded in `eventsource_schema_migrations`.
//!
//! Opened with [`SqliteEventStore::connect`], a database is in WAL mode (readers never
//! wait for the writer) with a 5 s busy timeout. Appends run in `BEGIN IMMEDIATE`
//! transactions, so concurrent writers queue for the write lock instead of failing with
//! `SQLITE_BUSY` halfway through, and global positions increase in commit order: `read_all`
//! never passes over an event that commits later with a smaller position.
//!
//! Every database operation runs to completion in a tokio task of its own (a tokio runtime
//! is required, as for sqlx): a caller that stops waiting (a timeout, a dropped request)
//! never cuts a transaction short, so a batch is committed whole or not at all, but an
//! append whose caller gave up may still be committed. It also keeps sqlx's connection
//! worker from holding the store's span, which therefore ends when the operation returns.
//!
//! Leases of the [`SqliteCheckpointStore`] are in-process: run the projections of one
//! SQLite database in one process.
//!
//! ```
//! use eventsource_runtime::event::{NewEvent, StreamId};
//! use eventsource_runtime::store::{EventStore, ExpectedVersion, SqliteEventStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = SqliteEventStore::connect(":memory:").await?; // or "orders.db", "sqlite:orders.db"
//! store.migrate().await?;
//!
//! let stream = StreamId::new("Order", "o-1");
//! let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": 12 }));
//! store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await?;
//! assert_eq!(store.stream_version(&stream).await?, 1);
//!
//! // The snapshot and checkpoint stores can share the event store's pool.
//! let snapshots = store.snapshot_store();
//! let checkpoints = store.checkpoint_store();
//! # let _ = (snapshots, checkpoints);
//! # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
//! ```

mod checkpoint;
mod snapshot;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use super::sql_row::StoredRow;
use super::{
    AppendResult, AppendSignal, EventStore, ExpectedVersion, StoreError, VersionConflict,
    instrument,
};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::telemetry::config::{StoreSpanNames, StoreTelemetry};

pub use checkpoint::{SqliteCheckpointStore, SqliteLease};
pub use snapshot::SqliteSnapshotStore;
/// The sqlx version these stores are built on, to build a pool for
/// [`SqliteEventStore::from_pool`] or run your own queries on [`SqliteEventStore::pool`].
pub use sqlx;

/// The schema of the SQLite stores (tables `events`, `snapshots`, `checkpoints`), as
/// applied by `migrate()`. Every statement is idempotent (`CREATE ... IF NOT EXISTS`).
pub const SCHEMA: &str = include_str!("sqlite/schema.sql");

/// The schema's versions, in order; `migrate()` applies those not yet recorded.
const MIGRATIONS: &[(i64, &str)] = &[(1, SCHEMA)];

/// `db.system.name` of the SQLite stores.
pub const SYSTEM: &str = "sqlite";

/// `db.collection.name` of the event store: the events table.
pub const EVENTS_TABLE: &str = "events";

/// How long a connection waits for another one's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a pool on a database file.
const FILE_POOL_SIZE: u32 = 8;

const SELECT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2";
const INSERT_EVENT: &str = "INSERT INTO events \
     (stream_type, stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const APPEND_QUERY_TEXT: &str = "BEGIN IMMEDIATE; \
     SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2; \
     INSERT INTO events \
     (stream_type, stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9); COMMIT";
const LOAD: &str = "SELECT position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata FROM events \
     WHERE stream_type = ?1 AND stream_id = ?2 AND version >= ?3 ORDER BY version";
const READ_ALL: &str = "SELECT position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata FROM events \
     WHERE position >= ?1 ORDER BY position LIMIT ?2";
const MAX_POSITION: &str = "SELECT COALESCE(MAX(position), 0) FROM events";

/// An [`EventStore`] in a SQLite database.
///
/// Cloning is cheap; clones share the pool, the in-process write queue and the
/// [`appended_signal`](EventStore::appended_signal). Safe to use from many tasks at once:
/// writers of this process queue for the database's write lock in turn (and wait up to the
/// busy timeout for other processes' writers), readers never block.
///
/// The [`appended_signal`](EventStore::appended_signal) reports the appends of this store
/// and its clones (not those of another process or of another store opened on the same
/// file), and starts at the newest position found by [`migrate`](Self::migrate).
///
/// Spans: the contract's CLIENT spans with `db.system.name` = `sqlite`,
/// `db.collection.name` = `events` and `db.operation.name` = `append`, `load` or
/// `read_all`; `db.query.text` only after [`record_query_text(true)`](Self::record_query_text).
///
/// ```
/// use eventsource_runtime::store::{EventStore, SqliteEventStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("eventsource-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let store = SqliteEventStore::connect(dir.join("events.db").to_str().unwrap())
///     .await?
///     .record_query_text(true);
/// store.migrate().await?;
/// assert_eq!(store.system_name(), "sqlite");
/// # store.close().await;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteEventStore {
    pool: SqlitePool,
    telemetry: Arc<StoreTelemetry>,
    record_query_text: bool,
    shared: Arc<Shared>,
}

/// What the clones of one store share.
struct Shared {
    /// This process's writers queue here before taking SQLite's write lock, instead of
    /// polling for it through the busy handler.
    writer: Mutex<()>,
    /// The newest global position appended by this process (or found by `migrate`).
    appended: watch::Sender<u64>,
}

impl std::fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEventStore")
            .field("database", &self.pool.connect_options().get_filename())
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

/// The backend failed.
pub(crate) fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// A count or version as SQLite's integer (saturating: nothing stored is that large).
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A timestamp as stored: RFC 3339, UTC, nanoseconds, so text order is time order.
pub(crate) fn format_timestamp(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A stored timestamp.
pub(crate) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// Whether `target` names an in-memory database.
fn is_memory(target: &str) -> bool {
    let rest = target
        .strip_prefix("sqlite://")
        .or_else(|| target.strip_prefix("sqlite:"))
        .unwrap_or(target);
    rest == ":memory:" || rest.starts_with(":memory:?") || target.contains("mode=memory")
}

/// Opens a pool as [`SqliteEventStore::connect`] describes.
pub(crate) async fn open_pool(target: &str) -> Result<SqlitePool, StoreError> {
    let memory = is_memory(target);
    let options = if target.starts_with("sqlite:") {
        // sqlx names each `sqlite::memory:` database uniquely.
        SqliteConnectOptions::from_str(target).map_err(unavailable)?
    } else if memory {
        SqliteConnectOptions::from_str("sqlite::memory:").map_err(unavailable)?
    } else {
        SqliteConnectOptions::new().filename(target)
    };
    let options = options.create_if_missing(true).busy_timeout(BUSY_TIMEOUT);
    let pool = if memory {
        // One connection that never closes: an in-memory database lives as long as a
        // connection to it, and every task sees the same data through it.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
    } else {
        SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options.journal_mode(SqliteJournalMode::Wal))
            .await
    };
    pool.map_err(unavailable)
}

/// Applies the schema's missing versions, in one `BEGIN IMMEDIATE` transaction.
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    detached(migrate_now(pool.clone())).await
}

async fn migrate_now(pool: SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(unavailable)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS eventsource_schema_migrations (\
             version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM eventsource_schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
    for &(version, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO eventsource_schema_migrations (version, applied_at) VALUES (?1, ?2)",
        )
        .bind(version)
        .bind(format_timestamp(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}

impl SqliteEventStore {
    /// Opens (creating it if missing) the database at `target`: a file path
    /// (`"data/events.db"`), a `sqlite:` URL (`"sqlite://data/events.db?mode=rwc"`), or
    /// `":memory:"` / `"sqlite::memory:"` for an in-memory database that lives as long as
    /// the store and is seen by all its clones.
    ///
    /// A file database is put in WAL mode, with a pool of 8 connections and a 5 s
    /// [busy timeout](BUSY_TIMEOUT). An in-memory database has a single connection.
    /// Call [`migrate`](Self::migrate) before the first use.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened.
    pub async fn connect(target: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(open_pool(target).await?))
    }

    /// A store on an existing pool. The pool's options are yours: for a file database, WAL
    /// mode and a busy timeout are recommended (as [`connect`](Self::connect) sets them).
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        let mut telemetry = StoreTelemetry::new(SYSTEM);
        telemetry.collection = Some(EVENTS_TABLE);
        Self {
            pool,
            telemetry: Arc::new(telemetry),
            record_query_text: false,
            shared: Arc::new(Shared {
                writer: Mutex::new(()),
                appended: watch::Sender::new(0),
            }),
        }
    }

    /// Creates the tables of all three SQLite stores (see [`SCHEMA`]) where missing.
    /// Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool).await?;
        let pool = self.pool.clone();
        let newest = detached(async move {
            let newest: i64 = sqlx::query_scalar(MAX_POSITION)
                .fetch_one(&pool)
                .await
                .map_err(unavailable)?;
            Ok(u64::try_from(newest).unwrap_or(0))
        })
        .await?;
        self.signal(newest);
        Ok(())
    }

    /// The component switch: `false` stops this store's spans (this clone's).
    #[must_use]
    pub fn enable_tracing(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.telemetry).enabled = enabled;
        self
    }

    /// Overrides the span names.
    #[must_use]
    pub fn with_span_names(mut self, names: StoreSpanNames) -> Self {
        Arc::make_mut(&mut self.telemetry).names = names;
        self
    }

    /// Opt-in: record the SQL of each operation as `db.query.text` on its span (off by
    /// default). Only the statement text with its `?N` placeholders is recorded, never the
    /// bound values.
    #[must_use]
    pub fn record_query_text(mut self, record: bool) -> Self {
        self.record_query_text = record;
        self
    }

    /// The connection pool, e.g. to share it with other stores or close it.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A snapshot store on the same database (and pool).
    #[must_use]
    pub fn snapshot_store(&self) -> SqliteSnapshotStore {
        SqliteSnapshotStore::from_pool(self.pool.clone())
    }

    /// A checkpoint store on the same database (and pool).
    #[must_use]
    pub fn checkpoint_store(&self) -> SqliteCheckpointStore {
        SqliteCheckpointStore::from_pool(self.pool.clone())
    }

    /// Closes the pool (of every clone) and waits for its connections to close. Every
    /// operation fails with [`StoreError::Unavailable`] afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn signal(&self, position: u64) {
        self.shared.appended.send_if_modified(|newest| {
            let newer = position > *newest;
            if newer {
                *newest = position;
            }
            newer
        });
    }

    /// Puts `sql` on the current span when the user opted in and that span is one of this
    /// store's (not a caller's, as when the store's spans are off).
    fn note_query(&self, sql: &'static str) {
        #[cfg(feature = "tracing")]
        if self.record_query_text {
            use crate::telemetry::attributes::DB_QUERY_TEXT;
            use crate::telemetry::config::{
                SPAN_STORE_APPEND, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL,
            };
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;

            let span = tracing::Span::current();
            let ours = span.metadata().is_some_and(|m| {
                m.target() == crate::telemetry::spans::TARGET
                    && [SPAN_STORE_APPEND, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL].contains(&m.name())
            });
            if ours {
                span.set_attribute(DB_QUERY_TEXT, sql);
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = sql;
    }
}

fn serialize(event: &NewEvent) -> Result<(String, String), StoreError> {
    let err = |source| StoreError::Serialize {
        event_type: event.event_type.to_string(),
        source,
    };
    Ok((
        serde_json::to_string(&event.payload).map_err(err)?,
        serde_json::to_string(&event.metadata).map_err(err)?,
    ))
}

async fn current_version(
    tx: &mut Transaction<'static, Sqlite>,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(SELECT_VERSION)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .fetch_one(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(u64::try_from(version).unwrap_or(0))
}

/// Reads one stored event; anything unreadable is [`StoreError::Corrupt`], never a panic.
fn decode(row: &SqliteRow) -> Result<EventEnvelope, StoreError> {
    StoredRow::new(row).envelope(|stored| {
        let event_id = stored.get::<String>("event_id")?;
        let event_id = Uuid::parse_str(&event_id).map_err(|e| stored.corrupt("event_id", &e))?;
        let timestamp = stored.get::<String>("timestamp")?;
        let timestamp = parse_timestamp(&timestamp).map_err(|e| stored.corrupt("timestamp", &e))?;
        Ok((event_id, timestamp))
    })
}

/// Runs a database operation in a task of its own, to completion, and waits for it.
///
/// - sqlx's SQLite connection worker keeps the span that is current when a command is sent
///   until it has answered, so a span would end at an unpredictable moment after the
///   operation returned; the task has no current span, the store's span ends on return.
/// - A caller that stops waiting (a timeout, a dropped request) does not cut a transaction
///   short: sqlx 0.8 can leave a connection inside a transaction when `begin_with` is
///   cancelled at the wrong moment. An append whose caller gave up may thus still commit,
///   all of it (never part of it).
pub(crate) async fn detached<T, F>(work: F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e))),
    }
}

async fn load_rows(
    pool: SqlitePool,
    stream: StreamId,
    from_version: u64,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let rows = sqlx::query(LOAD)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .bind(to_i64(from_version))
        .fetch_all(&pool)
        .await
        .map_err(unavailable)?;
    rows.iter().map(decode).collect()
}

async fn read_rows(
    pool: SqlitePool,
    from_position: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let rows = sqlx::query(READ_ALL)
        .bind(to_i64(from_position))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&pool)
        .await
        .map_err(unavailable)?;
    rows.iter().map(decode).collect()
}

async fn version_of(pool: SqlitePool, stream: StreamId) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(SELECT_VERSION)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .fetch_one(&pool)
        .await
        .map_err(unavailable)?;
    Ok(u64::try_from(version).unwrap_or(0))
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        instrument::append(
            &self.telemetry,
            stream,
            expected,
            events,
            "append",
            |events| async move {
                self.note_query(APPEND_QUERY_TEXT);
                detached(self.clone().append_now(stream.clone(), expected, events)).await
            },
        )
        .await
    }

    async fn load(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        instrument::load(&self.telemetry, stream, from_version, "load", async {
            self.note_query(LOAD);
            detached(load_rows(self.pool.clone(), stream.clone(), from_version)).await
        })
        .await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        instrument::read_all(&self.telemetry, from_position, limit, "read_all", async {
            self.note_query(READ_ALL);
            detached(read_rows(self.pool.clone(), from_position, limit)).await
        })
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        detached(version_of(self.pool.clone(), stream.clone())).await
    }

    fn system_name(&self) -> &'static str {
        SYSTEM
    }

    fn appended_signal(&self) -> Option<AppendSignal> {
        Some(self.shared.appended.subscribe())
    }
}

impl SqliteEventStore {
    async fn append_now(
        self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let stream = &stream;
        // Serialize before touching the database: a failure appends nothing.
        let serialized = events
            .iter()
            .map(serialize)
            .collect::<Result<Vec<_>, _>>()?;

        let _writer = self.shared.writer.lock().await;
        // Dropping `tx` without a commit (an error, a cancelled future) rolls it back.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let actual = current_version(&mut tx, stream).await?;
        if !expected.matches(actual) {
            return Err(VersionConflict {
                stream: stream.clone(),
                expected,
                actual,
            }
            .into());
        }

        let mut appended = Vec::with_capacity(events.len());
        for (offset, (event, (payload, metadata))) in events.into_iter().zip(serialized).enumerate()
        {
            let version = actual + offset as u64 + 1;
            let inserted = sqlx::query(INSERT_EVENT)
                .bind(stream.aggregate_type())
                .bind(stream.aggregate_id())
                .bind(to_i64(version))
                .bind(event.event_id.to_string())
                .bind(event.event_type.as_ref())
                .bind(i64::from(event.schema_version))
                .bind(format_timestamp(event.timestamp))
                .bind(payload)
                .bind(metadata)
                .execute(&mut *tx)
                .await;
            let position = match inserted {
                Ok(done) => u64::try_from(done.last_insert_rowid()).unwrap_or(0),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    // Another writer (outside this process's write queue and without
                    // BEGIN IMMEDIATE) got there first: report the version it left.
                    drop(tx);
                    let actual = version_of(self.pool.clone(), stream.clone()).await?;
                    return Err(VersionConflict {
                        stream: stream.clone(),
                        expected,
                        actual,
                    }
                    .into());
                }
                Err(e) => return Err(unavailable(e)),
            };
            appended.push(EventEnvelope {
                event_id: event.event_id,
                stream: stream.clone(),
                version,
                position,
                event_type: event.event_type.into_owned(),
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                payload: event.payload,
                metadata: event.metadata,
            });
        }
        tx.commit().await.map_err(unavailable)?;
        if let Some(last) = appended.last() {
            self.signal(last.position);
        }
        Ok(AppendResult {
            version: actual + appended.len() as u64,
            events: appended,
        })
    }
}
