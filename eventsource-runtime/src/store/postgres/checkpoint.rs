//! Projection checkpoints in the PostgreSQL `checkpoints` table, with leases that exclude
//! runners of every process: session-level advisory locks.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnection, PgPool};

use super::{
    DEFAULT_SCHEMA, InvalidSchemaName, check_schema, lock_key, migrate, open_pool, qualify, to_i64,
    unavailable,
};
use crate::projection::checkpoint::{CheckpointStore, ProjectionLease};
use crate::store::StoreError;

const LOAD: &str = "SELECT position FROM __schema__.checkpoints WHERE projection = $1";
const SAVE: &str = "INSERT INTO __schema__.checkpoints (projection, position) VALUES ($1, $2) \
     ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = now()";

#[derive(Debug)]
struct Statements {
    schema: String,
    load: String,
    save: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            load: qualify(LOAD, schema),
            save: qualify(SAVE, schema),
        }
    }
}

/// A [`CheckpointStore`] in the PostgreSQL `checkpoints` table, whose leases exclude the
/// runners of **every process** on the database.
///
/// [`save`](CheckpointStore::save) overwrites (a checkpoint may move back, as when a
/// projection is rebuilt). [`try_acquire`](CheckpointStore::try_acquire) opens a connection
/// of its own (outside the pool) and takes a session-level advisory lock keyed by the
/// schema and the projection's name (`pg_try_advisory_lock`, 64-bit FNV-1a of both); the
/// returned [`PostgresLease`] keeps that connection, and the lock, until it is released or
/// dropped. If the connection dies (the server restarts, the backend is terminated), the
/// lock goes with it: [`PostgresLease::is_held`] tells.
///
/// ```no_run
/// use eventsource_runtime::projection::checkpoint::CheckpointStore;
/// use eventsource_runtime::store::PostgresCheckpointStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let url = "postgres://postgres@127.0.0.1/app";
/// let here = PostgresCheckpointStore::connect(url).await?;
/// let elsewhere = PostgresCheckpointStore::connect(url).await?; // say, another process
/// here.migrate().await?;
///
/// let lease = here.try_acquire("orders").await?.expect("free");
/// assert!(elsewhere.try_acquire("orders").await?.is_none(), "held");
/// here.save("orders", 42).await?;
/// lease.release().await;
///
/// assert_eq!(elsewhere.load("orders").await?, 42);
/// assert!(elsewhere.try_acquire("orders").await?.is_some(), "released");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresCheckpointStore {
    pool: PgPool,
    sql: Arc<Statements>,
}

impl PostgresCheckpointStore {
    /// Connects to the database at `url`, as
    /// [`PostgresEventStore::connect`](super::PostgresEventStore::connect) does.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(open_pool(url).await?))
    }

    /// A checkpoint store on an existing pool (e.g. the event store's), in the `public`
    /// schema.
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self::on(pool, DEFAULT_SCHEMA)
    }

    pub(super) fn on(pool: PgPool, schema: &str) -> Self {
        Self {
            pool,
            sql: Arc::new(Statements::new(schema)),
        }
    }

    /// Keeps the checkpoints (and keys the leases) in `schema` instead of `public`.
    ///
    /// # Errors
    /// [`InvalidSchemaName`], as for
    /// [`PostgresEventStore::with_schema`](super::PostgresEventStore::with_schema).
    pub fn with_schema(mut self, schema: &str) -> Result<Self, InvalidSchemaName> {
        self.sql = Arc::new(Statements::new(&check_schema(schema)?));
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

    /// [`try_acquire`](CheckpointStore::try_acquire), with the lease as its own type (for
    /// [`PostgresLease::is_held`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection can be opened.
    pub async fn try_acquire_lease(
        &self,
        projection: &str,
    ) -> Result<Option<PostgresLease>, StoreError> {
        // A connection of the lease's own: the lock lives as long as its session.
        let mut connection = self.pool.acquire().await.map_err(unavailable)?.detach();
        let key = self.lease_key(projection);
        let taken = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut connection)
            .await;
        match taken {
            Ok(true) => Ok(Some(PostgresLease {
                connection: Some(connection),
                key,
                projection: projection.to_owned(),
            })),
            Ok(false) => {
                let _ = connection.close().await;
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The advisory lock key of `projection`'s lease.
    fn lease_key(&self, projection: &str) -> i64 {
        lock_key(&["eventsource.projection", &self.sql.schema, projection])
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(&self.sql.load)
            .bind(projection)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(position.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        sqlx::query(&self.sql.save)
            .bind(projection)
            .bind(to_i64(position))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        Ok(self
            .try_acquire_lease(projection)
            .await?
            .map(|lease| Box::new(lease) as Box<dyn ProjectionLease>))
    }
}

/// A [`PostgresCheckpointStore`] lease: a session-level advisory lock on a connection of
/// its own, held until released or dropped (dropping closes the connection, which ends
/// the session and frees the lock).
#[derive(Debug)]
pub struct PostgresLease {
    connection: Option<PgConnection>,
    key: i64,
    projection: String,
}

impl PostgresLease {
    /// The projection held.
    #[must_use]
    pub fn projection(&self) -> &str {
        &self.projection
    }

    /// Whether the lease's session is still alive, hence the lock still held. `false` once
    /// the connection is lost: another runner may have taken the projection since.
    pub async fn is_held(&mut self) -> bool {
        match self.connection.as_mut() {
            Some(connection) => connection.ping().await.is_ok(),
            None => false,
        }
    }
}

impl Drop for PostgresLease {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        // Say goodbye properly when a runtime is at hand; otherwise dropping the
        // connection closes its socket, and the server ends the session all the same.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = connection.close().await;
            });
        }
    }
}

#[async_trait]
impl ProjectionLease for PostgresLease {
    async fn release(mut self: Box<Self>) {
        if let Some(mut connection) = self.connection.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
        }
    }
}
