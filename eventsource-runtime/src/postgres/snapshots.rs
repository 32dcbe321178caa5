//! Snapshots in the PostgreSQL `snapshots` table.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;

use super::rows::{has_nul, join_timestamp, split_timestamp, unstorable};
use super::schema::{InvalidSchemaName, check_schema, migrate, qualify};
use super::{DEFAULT_SCHEMA, namespace_of, pool_store, store_telemetry, to_i64, unavailable};
use crate::event::StreamId;
use crate::snapshot::instrument::{SnapshotOperation, run};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::sql::snapshot_row::{column, snapshot_of};
use crate::store::backend::check_stream;
use crate::store::{StoreError, StoreTelemetry, WithStoreTelemetry};
use crate::telemetry::otel::log::log_warn;

/// `db.collection.name` of the snapshot store.
const TABLE: &str = "snapshots";

const SAVE: &str = "INSERT INTO __schema__.snapshots AS s \
         (stream_type, stream_id, version, state, taken_at, taken_at_nanos, schema_version) \
     VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) \
     ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
         version = excluded.version, state = excluded.state, \
         taken_at = excluded.taken_at, taken_at_nanos = excluded.taken_at_nanos, \
         schema_version = excluded.schema_version \
     WHERE excluded.version >= s.version";
const GET: &str = "SELECT version, state::text AS state, taken_at, taken_at_nanos, schema_version \
     FROM __schema__.snapshots WHERE stream_type = $1 AND stream_id = $2";
const DELETE: &str = "DELETE FROM __schema__.snapshots WHERE stream_type = $1 AND stream_id = $2";
const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM __schema__.snapshots \
     WHERE stream_type = $1 AND stream_id = $2)";

#[derive(Debug)]
struct Statements {
    schema: String,
    save: String,
    get: String,
    delete: String,
    exists: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            save: qualify(SAVE, schema),
            get: qualify(GET, schema),
            delete: qualify(DELETE, schema),
            exists: qualify(EXISTS, schema),
        }
    }
}

/// A [`SnapshotStore`] in the PostgreSQL `snapshots` table: one row, the newest snapshot,
/// per stream. Saving a snapshot older than the stored one changes nothing (one of the
/// same version replaces it), whichever process saves first.
///
/// A stored snapshot that cannot be read back is reported by
/// [`get`](SnapshotStore::get) as no snapshot, with a warning: a snapshot is only an
/// optimisation, and the aggregate is rebuilt from its events instead.
///
/// Spans: `eventsource.snapshot_store.{save,get,delete,exists}`, CLIENT, with the aggregate
/// id and type, `eventsource.version`, `db.system.name` = `postgresql`,
/// `db.collection.name` = `snapshots`, `server.address` and `server.port`.
///
/// ```no_run
/// use eventsource_runtime::event::StreamId;
/// use eventsource_runtime::snapshot::{Snapshot, SnapshotStore};
/// use eventsource_runtime::postgres::PostgresSnapshotStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let snapshots = PostgresSnapshotStore::connect("postgres://postgres@127.0.0.1/app").await?;
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
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresSnapshotStore {
    pool: PgPool,
    sql: Arc<Statements>,
    telemetry: Arc<StoreTelemetry>,
}

pool_store!(PostgresSnapshotStore, "snapshot store");

impl PostgresSnapshotStore {
    pub(super) fn on(pool: PgPool, schema: &str) -> Self {
        let telemetry = store_telemetry(&pool, TABLE, DEFAULT_SCHEMA);
        Self {
            pool,
            sql: Arc::new(Statements::new(schema)),
            telemetry: Arc::new(telemetry),
        }
    }

    /// Keeps the snapshots in `schema` instead of `public`.
    ///
    /// # Errors
    /// [`InvalidSchemaName`], as for
    /// [`PostgresEventStore::with_schema`](super::PostgresEventStore::with_schema).
    pub fn with_schema(mut self, schema: &str) -> Result<Self, InvalidSchemaName> {
        let schema = check_schema(schema)?;
        self.sql = Arc::new(Statements::new(&schema));
        Arc::make_mut(&mut self.telemetry).namespace =
            Some(namespace_of(&self.pool.connect_options(), &schema));
        Ok(self)
    }

    /// Creates the schema and the tables of all three PostgreSQL stores where missing (see
    /// [`SCHEMA`](super::SCHEMA)). Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool, &self.sql.schema).await
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn read_row(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        check_stream(stream)?;
        let Some(row) = sqlx::query(&self.sql.get)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let taken_at = column::<_, DateTime<Utc>>(&row, "taken_at").and_then(|micros| {
            let nanos: i32 = column(&row, "taken_at_nanos")?;
            join_timestamp(micros, nanos).ok_or_else(|| format!("taken_at_nanos: {nanos}"))
        });
        match snapshot_of(&row, stream, taken_at) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(reason) => {
                log_warn!(stream = %stream, reason, "ignoring an unreadable snapshot");
                Ok(None)
            }
        }
    }
}

impl WithStoreTelemetry for PostgresSnapshotStore {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut StoreTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

#[async_trait]
impl SnapshotStore for PostgresSnapshotStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let stream = snapshot.stream.clone();
        run(
            &self.telemetry,
            SnapshotOperation::Save.with_query_text(&self.sql.save),
            &stream,
            Some(snapshot.version),
            async {
                check_stream(&stream)?;
                let what = format!("snapshot of {}", snapshot.stream.aggregate_type());
                if has_nul(snapshot.state.as_str()) {
                    return Err(unstorable(&what, "the state"));
                }
                let state = serde_json::to_string(&snapshot.state).map_err(|source| {
                    StoreError::Serialize {
                        event_type: what.clone(),
                        source,
                    }
                })?;
                let (taken_at, nanos) = split_timestamp(snapshot.taken_at);
                sqlx::query(&self.sql.save)
                    .bind(stream.aggregate_type())
                    .bind(stream.aggregate_id())
                    .bind(to_i64(snapshot.version))
                    .bind(state)
                    .bind(taken_at)
                    .bind(nanos)
                    .bind(i64::from(snapshot.schema_version))
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
        )
        .await
    }

    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        run(
            &self.telemetry,
            SnapshotOperation::Get.with_query_text(&self.sql.get),
            stream,
            None,
            self.read_row(stream),
        )
        .await
    }

    async fn delete(&self, stream: &StreamId) -> Result<(), StoreError> {
        run(
            &self.telemetry,
            SnapshotOperation::Delete.with_query_text(&self.sql.delete),
            stream,
            None,
            async {
                check_stream(stream)?;
                sqlx::query(&self.sql.delete)
                    .bind(stream.aggregate_type())
                    .bind(stream.aggregate_id())
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
        )
        .await
    }

    async fn exists(&self, stream: &StreamId) -> Result<bool, StoreError> {
        run(
            &self.telemetry,
            SnapshotOperation::Exists.with_query_text(&self.sql.exists),
            stream,
            None,
            async {
                check_stream(stream)?;
                sqlx::query_scalar::<_, bool>(&self.sql.exists)
                    .bind(stream.aggregate_type())
                    .bind(stream.aggregate_id())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(unavailable)
            },
        )
        .await
    }
}
