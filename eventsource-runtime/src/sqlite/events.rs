//! The SQLite event store: appends in `BEGIN IMMEDIATE` transactions queued per process,
//! reads in global order.

use std::sync::Arc;

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, watch};

use super::append::insert_rows;
use super::log_reader::SqliteLogReader;
use super::rows::read_rows;
use super::{
    EVENTS_TABLE, SYSTEM, SqliteCheckpointStore, SqliteProcessedMessages, SqliteSnapshotStore,
    detached, migrate, open_pool, to_i64, to_u64, unavailable,
};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::store::backend::{Append, Appended, Backend, Events, ReadAll, metadata_json};
use crate::store::{
    AppendResult, AppendSignal, ExpectedVersion, LogReader, StoreError, StoreTelemetry,
    VersionConflict, WithStoreTelemetry,
};

const SELECT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2";
/// The append's statements, as its span shows them: a multi-event append repeats the row of
/// its `INSERT` (up to 256 rows a statement).
const APPEND_QUERY_TEXT: &str = "BEGIN IMMEDIATE; \
     SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_type = ?1 AND stream_id = ?2; \
     INSERT INTO events \
     (stream_type, stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?); COMMIT";
const LOAD: &str = "SELECT position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata FROM events \
     WHERE stream_type = ?1 AND stream_id = ?2 AND version >= ?3 ORDER BY version";
const LOAD_PAGE: &str = "SELECT position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata FROM events \
     WHERE stream_type = ?1 AND stream_id = ?2 AND version >= ?3 ORDER BY version LIMIT ?4";
/// Through the index of schema version 5 (`events_correlation_id`).
const BY_CORRELATION: &str = "SELECT position, stream_type, stream_id, version, event_id, \
     event_type, schema_version, timestamp, payload, metadata FROM events \
     WHERE correlation_id = ?1 ORDER BY position";
const MAX_POSITION: &str = "SELECT COALESCE(MAX(position), 0) FROM events";

/// An [`EventStore`](crate::store::EventStore) in a SQLite database.
///
/// Cloning is cheap; clones share the pool, the in-process write queue and the
/// [`appended_signal`](crate::store::EventStore::appended_signal). Safe to use from many tasks at once:
/// writers of this process queue for the database's write lock in turn (and wait up to the
/// busy timeout for other processes' writers), readers never block.
///
/// The [`appended_signal`](crate::store::EventStore::appended_signal) reports the appends of this store
/// and its clones (not those of another process or of another store opened on the same
/// file), and starts at the newest position found by [`migrate`](Self::migrate).
///
/// Spans: the contract's CLIENT spans with `db.system.name` = `sqlite`,
/// `db.collection.name` = `events` and `db.operation.name` = `append`, `load`, `read_all`
/// or `events_by_correlation`; `db.query.text` only after
/// [`record_query_text(true)`](Self::record_query_text).
///
/// ```
/// use eventsource_runtime::sqlite::SqliteEventStore;
/// use eventsource_runtime::store::{EventStore, WithStoreTelemetry};
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

impl SqliteEventStore {
    /// Opens (creating it if missing) the database at `target`: a file path
    /// (`"data/events.db"`), a `sqlite:` URL (`"sqlite://data/events.db?mode=rwc"`), or
    /// `":memory:"` / `"sqlite::memory:"` for an in-memory database that lives as long as
    /// the store and is seen by all its clones.
    ///
    /// A file database is put in WAL mode, with a pool of 8 connections and a 5 s
    /// [busy timeout](super::BUSY_TIMEOUT). An in-memory database has a single connection.
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
            shared: Arc::new(Shared {
                writer: Mutex::new(()),
                appended: watch::Sender::new(0),
            }),
        }
    }

    /// Creates the tables of all three SQLite stores (see [`SCHEMA`](super::SCHEMA)) where missing.
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
            Ok(to_u64(newest))
        })
        .await?;
        self.signal(newest);
        Ok(())
    }

    /// Whether [`migrate`](Self::migrate) made the store in this database (its events table
    /// is there): an operator's tool tells a file never migrated from an empty store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        let pool = self.pool.clone();
        detached(async move {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
            )
            .fetch_one(&pool)
            .await
            .map_err(unavailable)
        })
        .await
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

    /// A store of [idempotent handlers](crate::bus::Idempotent)' handled messages on the
    /// same database (and pool).
    #[must_use]
    pub fn processed_messages(&self) -> SqliteProcessedMessages {
        SqliteProcessedMessages::from_pool(self.pool.clone())
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
    Ok(to_u64(version))
}

async fn version_of(pool: SqlitePool, stream: StreamId) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(SELECT_VERSION)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .fetch_one(&pool)
        .await
        .map_err(unavailable)?;
    Ok(to_u64(version))
}

impl WithStoreTelemetry for SqliteEventStore {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut StoreTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

impl Backend for SqliteEventStore {
    fn telemetry(&self) -> &StoreTelemetry {
        &self.telemetry
    }

    fn query_text(&self, operation: &'static str) -> Option<&str> {
        match operation {
            "append" => Some(APPEND_QUERY_TEXT),
            "load" => Some(LOAD),
            "read_all" => Some(super::log_page::READ_ALL_AS_PAGE),
            "events_by_correlation" => Some(BY_CORRELATION),
            _ => None,
        }
    }

    async fn append_events(&self, append: Append<'_>) -> Appended {
        let Append {
            stream,
            expected,
            events,
        } = append;
        detached(self.clone().append_rows(stream.clone(), expected, events)).await
    }

    async fn load_events(&self, stream: &StreamId, from_version: u64) -> Events {
        let query = sqlx::query(LOAD)
            .bind(stream.aggregate_type().to_owned())
            .bind(stream.aggregate_id().to_owned())
            .bind(to_i64(from_version));
        detached(read_rows(self.pool.clone(), query, Some(stream.clone()))).await
    }

    async fn load_events_page(&self, stream: &StreamId, from_version: u64, limit: usize) -> Events {
        let query = sqlx::query(LOAD_PAGE)
            .bind(stream.aggregate_type().to_owned())
            .bind(stream.aggregate_id().to_owned())
            .bind(to_i64(from_version))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        detached(read_rows(self.pool.clone(), query, Some(stream.clone()))).await
    }

    async fn read_events(&self, from_position: u64, limit: usize) -> ReadAll {
        detached(super::log_page::read_page(
            self.pool.clone(),
            from_position,
            limit,
        ))
        .await
    }

    fn batch_reader(
        &self,
        from_position: u64,
        batch_size: usize,
    ) -> Option<Box<dyn LogReader + '_>> {
        Some(Box::new(SqliteLogReader::new(
            self,
            from_position,
            batch_size,
        )))
    }

    async fn correlated_events(&self, correlation_id: &str) -> Events {
        let query = sqlx::query(BY_CORRELATION).bind(correlation_id.to_owned());
        detached(read_rows(self.pool.clone(), query, None)).await
    }

    async fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        detached(version_of(self.pool.clone(), stream.clone())).await
    }

    fn signal(&self) -> Option<AppendSignal> {
        Some(self.shared.appended.subscribe())
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        detached(async move {
            let newest: i64 = sqlx::query_scalar(MAX_POSITION)
                .fetch_one(&pool)
                .await
                .map_err(unavailable)?;
            Ok(to_u64(newest))
        })
        .await
    }
}

impl SqliteEventStore {
    async fn append_rows(
        self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let stream = &stream;
        // Serialize before touching the database: a failure appends nothing.
        let metadata = events
            .iter()
            .map(metadata_json)
            .collect::<Result<Vec<_>, _>>()?;

        let _writer = self.shared.writer.lock().await;
        // Dropping `tx` without a commit (an error, a cancelled future) rolls it back.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let actual = current_version(&mut tx, stream).await?;
        expected.check(stream, actual)?;

        let positions = match insert_rows(&mut tx, stream, actual + 1, &events, &metadata).await {
            Ok(positions) => positions,
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
        let appended: Vec<EventEnvelope> = events
            .into_iter()
            .zip(positions)
            .enumerate()
            .map(|(offset, (event, position))| EventEnvelope {
                event_id: event.event_id,
                stream: stream.clone(),
                version: actual + offset as u64 + 1,
                position,
                event_type: event.event_type,
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                payload: event.payload,
                metadata: event.metadata,
            })
            .collect();
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
