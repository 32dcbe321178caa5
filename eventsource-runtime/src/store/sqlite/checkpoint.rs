//! Projection checkpoints in the SQLite `checkpoints` table, with in-process leases.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::SqlitePool;

use super::{detached, format_timestamp, migrate, open_pool, to_i64, unavailable};
use crate::projection::checkpoint::{CheckpointStore, ProjectionLease};
use crate::store::StoreError;

const LOAD: &str = "SELECT position FROM checkpoints WHERE projection = ?1";
const SAVE: &str = "INSERT INTO checkpoints (projection, position, updated_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";

/// The projections held in this process, per database file.
static HELD: LazyLock<Mutex<HashSet<(PathBuf, String)>>> = LazyLock::new(Mutex::default);

fn held() -> std::sync::MutexGuard<'static, HashSet<(PathBuf, String)>> {
    // Nothing panics while the lock is held, so a poisoned set is still consistent.
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`CheckpointStore`] in the SQLite `checkpoints` table.
///
/// [`save`](CheckpointStore::save) overwrites (a checkpoint may move back, as when a
/// projection is rebuilt). Leases are **in-process**: SQLite serves one process, so
/// [`try_acquire`](CheckpointStore::try_acquire) excludes the other runners of this
/// process on the same database file (whichever store or pool they use), not runners of
/// another process. Run the projections of one SQLite database in one process.
///
/// ```
/// use eventsource_runtime::projection::checkpoint::CheckpointStore;
/// use eventsource_runtime::store::SqliteCheckpointStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let checkpoints = SqliteCheckpointStore::connect(":memory:").await?;
/// checkpoints.migrate().await?;
/// assert_eq!(checkpoints.load("orders").await?, 0);
///
/// let lease = checkpoints.try_acquire("orders").await?.expect("free");
/// assert!(checkpoints.try_acquire("orders").await?.is_none(), "held");
/// checkpoints.save("orders", 42).await?;
/// lease.release().await;
///
/// assert_eq!(checkpoints.load("orders").await?, 42);
/// assert!(checkpoints.try_acquire("orders").await?.is_some(), "released");
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteCheckpointStore {
    pool: SqlitePool,
}

impl SqliteCheckpointStore {
    /// Opens the database at `target`, as [`SqliteEventStore::connect`] does.
    ///
    /// [`SqliteEventStore::connect`]: super::SqliteEventStore::connect
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened.
    pub async fn connect(target: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(open_pool(target).await?))
    }

    /// A checkpoint store on an existing pool (e.g. the event store's).
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
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

    /// The database the leases are keyed by: its file, canonical when it exists (an
    /// in-memory database has a unique name).
    fn database(&self) -> PathBuf {
        let file = self.pool.connect_options().get_filename().to_path_buf();
        std::fs::canonicalize(&file).unwrap_or(file)
    }
}

#[async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        let (pool, projection) = (self.pool.clone(), projection.to_owned());
        detached(async move {
            let position: Option<i64> = sqlx::query_scalar(LOAD)
                .bind(projection)
                .fetch_optional(&pool)
                .await
                .map_err(unavailable)?;
            Ok(position.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
        })
        .await
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        let (pool, projection) = (self.pool.clone(), projection.to_owned());
        detached(async move {
            sqlx::query(SAVE)
                .bind(projection)
                .bind(to_i64(position))
                .bind(format_timestamp(Utc::now()))
                .execute(&pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        if self.pool.is_closed() {
            return Err(unavailable(sqlx::Error::PoolClosed));
        }
        let key = (self.database(), projection.to_owned());
        if !held().insert(key.clone()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SqliteLease { key })))
    }
}

/// A [`SqliteCheckpointStore`] lease: held until dropped or released.
#[derive(Debug)]
pub struct SqliteLease {
    key: (PathBuf, String),
}

impl SqliteLease {
    /// The projection held.
    #[must_use]
    pub fn projection(&self) -> &str {
        &self.key.1
    }
}

impl Drop for SqliteLease {
    fn drop(&mut self) {
        held().remove(&self.key);
    }
}

#[async_trait]
impl ProjectionLease for SqliteLease {
    async fn release(self: Box<Self>) {}
}
