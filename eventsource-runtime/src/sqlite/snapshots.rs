//! Snapshots in the SQLite `snapshots` table.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;

use super::{detached, format_timestamp, migrate, open_pool, parse_timestamp, to_i64, unavailable};
use crate::event::StreamId;
use crate::snapshot::instrument::{SnapshotOperation, run};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::sql::snapshot_row::{column, snapshot_of};
use crate::store::backend::check_stream;
use crate::store::{StoreError, StoreTelemetry, WithStoreTelemetry};
use crate::telemetry::otel::log::log_warn;

/// `db.collection.name` of the snapshot store.
const TABLE: &str = "snapshots";

const SAVE: &str = "INSERT INTO snapshots \
         (stream_type, stream_id, version, state, taken_at, schema_version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
     version = excluded.version, state = excluded.state, taken_at = excluded.taken_at, \
     schema_version = excluded.schema_version \
     WHERE excluded.version >= snapshots.version";
const GET: &str = "SELECT version, state, taken_at, schema_version FROM snapshots \
     WHERE stream_type = ?1 AND stream_id = ?2";
const DELETE: &str = "DELETE FROM snapshots WHERE stream_type = ?1 AND stream_id = ?2";
const EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM snapshots WHERE stream_type = ?1 AND stream_id = ?2)";

/// A [`SnapshotStore`] in the SQLite `snapshots` table: one row, the newest snapshot, per
/// stream. Saving a snapshot older than the stored one changes nothing.
///
/// A stored snapshot that cannot be read back (damaged JSON or timestamp) is reported by
/// [`get`](SnapshotStore::get) as no snapshot, with a warning: a snapshot is only an
/// optimisation, and the aggregate is rebuilt from its events instead.
///
/// Spans: `eventsource.snapshot_store.{save,get,delete,exists}`, CLIENT, with the aggregate
/// id and type, `eventsource.version`, `db.system.name` = `sqlite` and
/// `db.collection.name` = `snapshots`.
///
/// ```
/// use eventsource_runtime::event::StreamId;
/// use eventsource_runtime::snapshot::{Snapshot, SnapshotStore};
/// use eventsource_runtime::sqlite::SqliteSnapshotStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let snapshots = SqliteSnapshotStore::connect(":memory:").await?;
/// snapshots.migrate().await?;
/// let stream = StreamId::new("Order", "o-1");
/// let at = |version| Snapshot {
///     stream: stream.clone(),
///     version,
///     state: serde_json::json!({ "lines": version }).into(),
///     schema_version: 1,
///     taken_at: chrono::Utc::now(),
/// };
/// snapshots.save(at(20)).await?;
/// snapshots.save(at(10)).await?; // older: ignored
/// assert_eq!(snapshots.get(&stream).await?.unwrap().version, 20);
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteSnapshotStore {
    pool: SqlitePool,
    telemetry: Arc<StoreTelemetry>,
}

impl SqliteSnapshotStore {
    /// Opens the database at `target`, as [`SqliteEventStore::connect`] does.
    ///
    /// [`SqliteEventStore::connect`]: super::SqliteEventStore::connect
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened.
    pub async fn connect(target: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(open_pool(target).await?))
    }

    /// A snapshot store on an existing pool (e.g. the event store's).
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        let mut telemetry = StoreTelemetry::new(super::SYSTEM);
        telemetry.collection = Some(TABLE);
        Self {
            pool,
            telemetry: Arc::new(telemetry),
        }
    }

    /// Creates the tables of all three SQLite stores where missing (see
    /// [`SCHEMA`](super::SCHEMA)). Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool).await
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The stored snapshot of `stream`, or why it cannot be read.
async fn read_row(
    pool: SqlitePool,
    stream: StreamId,
) -> Result<Option<Result<Snapshot, String>>, StoreError> {
    check_stream(&stream)?;
    let Some(row) = sqlx::query(GET)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .fetch_optional(&pool)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let taken_at = column::<_, String>(&row, "taken_at")
        .and_then(|text| parse_timestamp(&text).map_err(|e| format!("taken_at: {e}")));
    Ok(Some(snapshot_of(&row, &stream, taken_at)))
}

async fn write_row(pool: SqlitePool, snapshot: Snapshot) -> Result<(), StoreError> {
    check_stream(&snapshot.stream)?;
    let state = serde_json::to_string(&snapshot.state).map_err(|source| StoreError::Serialize {
        event_type: format!("snapshot of {}", snapshot.stream.aggregate_type()),
        source,
    })?;
    sqlx::query(SAVE)
        .bind(snapshot.stream.aggregate_type())
        .bind(snapshot.stream.aggregate_id())
        .bind(to_i64(snapshot.version))
        .bind(state)
        .bind(format_timestamp(snapshot.taken_at))
        .bind(i64::from(snapshot.schema_version))
        .execute(&pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn delete_row(pool: SqlitePool, stream: StreamId) -> Result<(), StoreError> {
    check_stream(&stream)?;
    sqlx::query(DELETE)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .execute(&pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn row_exists(pool: SqlitePool, stream: StreamId) -> Result<bool, StoreError> {
    check_stream(&stream)?;
    sqlx::query_scalar::<_, bool>(EXISTS)
        .bind(stream.aggregate_type())
        .bind(stream.aggregate_id())
        .fetch_one(&pool)
        .await
        .map_err(unavailable)
}

impl WithStoreTelemetry for SqliteSnapshotStore {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut StoreTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

#[async_trait]
impl SnapshotStore for SqliteSnapshotStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let stream = snapshot.stream.clone();
        let version = Some(snapshot.version);
        let work = detached(write_row(self.pool.clone(), snapshot));
        let operation = SnapshotOperation::Save.with_query_text(SAVE);
        run(&self.telemetry, operation, &stream, version, work).await
    }

    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let work = async {
            match detached(read_row(self.pool.clone(), stream.clone())).await? {
                None => Ok(None),
                Some(Ok(snapshot)) => Ok(Some(snapshot)),
                Some(Err(reason)) => {
                    log_warn!(
                        stream = %stream,
                        reason,
                        "ignoring an unreadable snapshot; the aggregate is rebuilt from its events"
                    );
                    Ok(None)
                }
            }
        };
        let operation = SnapshotOperation::Get.with_query_text(GET);
        run(&self.telemetry, operation, stream, None, work).await
    }

    async fn delete(&self, stream: &StreamId) -> Result<(), StoreError> {
        let work = detached(delete_row(self.pool.clone(), stream.clone()));
        let operation = SnapshotOperation::Delete.with_query_text(DELETE);
        run(&self.telemetry, operation, stream, None, work).await
    }

    async fn exists(&self, stream: &StreamId) -> Result<bool, StoreError> {
        let work = detached(row_exists(self.pool.clone(), stream.clone()));
        let operation = SnapshotOperation::Exists.with_query_text(EXISTS);
        run(&self.telemetry, operation, stream, None, work).await
    }
}
