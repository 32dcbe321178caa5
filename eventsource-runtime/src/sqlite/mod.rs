//! SQLite (feature `sqlite`): everything this database does for the runtime. Events,
//! snapshots and projection checkpoints in one embedded database file, through
//! [sqlx](https://docs.rs/sqlx) with runtime queries (re-exported as
//! `eventsource_runtime::sqlx`):
//!
//! - [`SqliteEventStore`] (`events`), its rows read back (`rows`), and its
//!   [`LogReader`](crate::store::LogReader) for a reader catching up (`log_reader`), which
//!   has SQLite write each page of the log as one text (`log_page`);
//! - [`SqliteSnapshotStore`] (`snapshots`);
//! - [`SqliteCheckpointStore`] and its in-process [`SqliteLease`] (`checkpoints`);
//! - [`SqliteProcessedMessages`], the messages [idempotent handlers](crate::bus::Idempotent)
//!   handled (`processed`);
//! - here: opening a database, the schema and its migration.
//!
//! SQLite fits when one process on one machine is enough. The stores share one schema
//! ([`SCHEMA`], then [`SCHEMA_V2`] to [`SCHEMA_V7`]), which `migrate()` on any of them
//! applies as a whole (idempotent: run it at every start, from any of the stores, as often
//! as you like):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `events` | `position INTEGER PRIMARY KEY AUTOINCREMENT`, `UNIQUE (stream_type, stream_id, version)` | event id, event type, schema version, timestamp (RFC 3339 text), JSON payload and metadata |
//! | `snapshots` | `(stream_type, stream_id)` | the newest snapshot per stream, with its `schema_version` (version 4, [`SCHEMA_V4`]) |
//! | `checkpoints` | `projection` | each projection's checkpoint, and why its runner stopped, `stopped_at` and `stop_error` (version 7, [`SCHEMA_V7`]) |
//! | `parked_events` | `(projection, position)` | the events each projection parked, with the error (version 2, [`SCHEMA_V2`]), and when an operator asked to retry one, `retry_requested_at` (version 6, [`SCHEMA_V6`]) |
//! | `processed_messages` | `(handler, message_id)` | the messages each idempotent handler handled (version 3, [`SCHEMA_V3`]) |
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
//! use eventsource_runtime::sqlite::SqliteEventStore;
//! use eventsource_runtime::store::{EventStore, ExpectedVersion};
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

mod append;
mod checkpoints;
mod events;
mod log_page;
mod log_reader;
mod processed;
mod rows;
mod snapshots;

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::sql::schema::pending;
use crate::store::StoreError;

pub use checkpoints::{SqliteCheckpointStore, SqliteLease};
pub use events::SqliteEventStore;
#[cfg(feature = "fuzzing")]
pub(crate) use log_page::decode_page;
pub use processed::SqliteProcessedMessages;
#[cfg(feature = "fuzzing")]
pub(crate) use rows::decode_of as decode_row;
pub use snapshots::SqliteSnapshotStore;

/// The schema of the SQLite stores (tables `events`, `snapshots`, `checkpoints`), version
/// 1, as applied by `migrate()`. Every statement is idempotent (`CREATE ... IF NOT
/// EXISTS`).
pub const SCHEMA: &str = include_str!("schema/full.sql");

/// Version 2 of the schema: the `parked_events` table, applied by `migrate()` after
/// [`SCHEMA`].
pub const SCHEMA_V2: &str = include_str!("schema/v2.sql");

/// Version 3 of the schema: the table `processed_messages` of
/// [`SqliteProcessedMessages`], applied by `migrate()` after [`SCHEMA_V2`].
pub const SCHEMA_V3: &str = include_str!("schema/v3.sql");

/// Version 4 of the schema: the column `snapshots.schema_version` (the aggregate's
/// `SNAPSHOT_VERSION` a snapshot was taken at; 1 for the snapshots stored before), applied
/// by `migrate()` after [`SCHEMA_V3`].
pub const SCHEMA_V4: &str = include_str!("schema/v4.sql");

/// Version 5 of the schema: the virtual column `events.correlation_id` (the metadata's)
/// and its index, for `events_by_correlation`, applied by `migrate()` after [`SCHEMA_V4`].
pub const SCHEMA_V5: &str = include_str!("schema/v5.sql");

/// Version 6 of the schema: the column `parked_events.retry_requested_at` (an operator's
/// request that the running runner retry the parked event), applied by `migrate()` after
/// [`SCHEMA_V5`].
pub const SCHEMA_V6: &str = include_str!("schema/v6.sql");

/// Version 7 of the schema: the columns `checkpoints.stopped_at` and `stop_error` (why a
/// projection's runner stopped on an error, until a runner takes it again), applied by
/// `migrate()` after [`SCHEMA_V6`].
pub const SCHEMA_V7: &str = include_str!("schema/v7.sql");

/// The schema's versions, in order; `migrate()` applies those not yet recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA),
    (2, SCHEMA_V2), // parked events
    (3, SCHEMA_V3), // idempotent handlers' processed messages
    (4, SCHEMA_V4), // snapshots' schema version
    (5, SCHEMA_V5), // events by correlation id
    (6, SCHEMA_V6), // retry requests of parked events
    (7, SCHEMA_V7), // why a runner stopped
];

/// `db.system.name` of the SQLite stores.
pub const SYSTEM: &str = "sqlite";

/// `db.collection.name` of the event store: the events table.
pub const EVENTS_TABLE: &str = "events";

/// How long a connection waits for another one's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a pool on a database file.
const FILE_POOL_SIZE: u32 = 8;

/// `from_pool`, `migrate`, `pool` and `connect` of a store that is a pool and nothing
/// else (`$what` names it in the docs).
macro_rules! pool_store {
    ($store:ident, $what:literal) => {
        impl $store {
            #[doc = concat!("A ", $what, " on an existing pool (e.g. the event store's).")]
            #[must_use]
            pub fn from_pool(pool: SqlitePool) -> Self {
                Self { pool }
            }

            /// Creates the tables of the SQLite stores where missing (see
            /// [`SCHEMA`](super::SCHEMA) and its later versions). Idempotent.
            ///
            /// # Errors
            /// [`StoreError::Unavailable`].
            pub async fn migrate(&self) -> Result<(), StoreError> {
                super::migrate(&self.pool).await
            }

            /// The connection pool.
            #[must_use]
            pub fn pool(&self) -> &SqlitePool {
                &self.pool
            }

            /// Opens the database at `target`, as
            /// [`SqliteEventStore::connect`](super::SqliteEventStore::connect) does.
            ///
            /// # Errors
            /// [`StoreError::Unavailable`] when the database cannot be opened.
            pub async fn connect(target: &str) -> Result<Self, StoreError> {
                Ok(Self::from_pool(super::open_pool(target).await?))
            }
        }
    };
}
use pool_store;

pub(crate) use crate::sql::{to_i64, to_u64, unavailable};

/// A timestamp as stored: RFC 3339, UTC, nanoseconds, so text order is time order.
pub(crate) fn format_timestamp(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A stored timestamp.
pub(crate) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// The database a pool is on, as its file (canonical when it exists; an in-memory
/// database has a unique name): what in-process leases and claims are keyed by.
pub(crate) fn database_file(pool: &SqlitePool) -> PathBuf {
    let file = pool.connect_options().get_filename().to_path_buf();
    std::fs::canonicalize(&file).unwrap_or(file)
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
        // Switching a fresh file to WAL takes an exclusive lock, and SQLite answers "database
        // is locked" at once (no busy handler) to a connection that meets another one doing
        // it: try again, within the busy timeout.
        let options = options.journal_mode(SqliteJournalMode::Wal);
        let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let pool = SqlitePoolOptions::new()
                .max_connections(FILE_POOL_SIZE)
                .connect_with(options.clone())
                .await;
            match pool {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("5")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                pool => break pool,
            }
        }
    };
    pool.map_err(unavailable)
}

/// Applies the schema's missing versions, in one `BEGIN IMMEDIATE` transaction.
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    detached(apply_migrations(pool.clone())).await
}

async fn apply_migrations(pool: SqlitePool) -> Result<(), StoreError> {
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
    for (version, sql) in pending(MIGRATIONS, &applied) {
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
    joined(tokio::spawn(work)).await
}

/// What the task `handle` returned; its panic goes on in the caller.
async fn joined<T>(
    handle: tokio::task::JoinHandle<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match handle.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e))),
    }
}
