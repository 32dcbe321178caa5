//! Projection checkpoints in the SQLite `checkpoints` table, with in-process leases, and
//! the events projections parked (`parked_events`).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::SqlitePool;

use super::{
    database_file, detached, format_timestamp, parse_timestamp, pool_store, to_i64, to_u64,
    unavailable,
};
use crate::projection::checkpoint::{
    CheckpointRecord, CheckpointStore, LeaseHolder, ParkedEvent, ProjectionLease, RunnerStop,
};
use crate::store::StoreError;

const LOAD: &str = "SELECT position FROM checkpoints WHERE projection = ?1";
// Never back: a save that comes late leaves a further checkpoint as it is.
const SAVE: &str = "INSERT INTO checkpoints (projection, position, updated_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (projection) DO UPDATE \
     SET position = max(checkpoints.position, excluded.position), updated_at = excluded.updated_at";
const RESET: &str = "INSERT INTO checkpoints (projection, position, updated_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";
const PARK: &str = "INSERT INTO parked_events (projection, position, error, parked_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection, position) \
     DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at, \
     retry_requested_at = NULL";
const REQUEST_RETRY: &str = "UPDATE parked_events SET retry_requested_at = ?3 \
     WHERE projection = ?1 AND position = ?2";
const RETRY_REQUESTS: &str = "SELECT position FROM parked_events \
     WHERE projection = ?1 AND retry_requested_at IS NOT NULL ORDER BY position";
const PARKED: &str = "SELECT position, error, parked_at FROM parked_events \
     WHERE projection = ?1 ORDER BY position";
const UNPARK: &str = "DELETE FROM parked_events WHERE projection = ?1 AND position = ?2";
const FORGET_CHECKPOINT: &str = "DELETE FROM checkpoints WHERE projection = ?1";
const FORGET_PARKED: &str = "DELETE FROM parked_events WHERE projection = ?1";
const CHECKPOINTS: &str = "SELECT projection, position, updated_at, stopped_at, stop_error \
     FROM checkpoints ORDER BY projection";
// A projection with no checkpoint yet gets one at 0, so that its stop is listed.
const RECORD_STOP: &str = "INSERT INTO checkpoints (projection, position, updated_at, stopped_at, stop_error) \
     VALUES (?1, 0, ?2, ?2, ?3) ON CONFLICT (projection) DO UPDATE \
     SET stopped_at = excluded.stopped_at, stop_error = excluded.stop_error";
const CLEAR_STOP: &str = "UPDATE checkpoints SET stopped_at = NULL, stop_error = NULL \
     WHERE projection = ?1 AND stopped_at IS NOT NULL";
const PARKED_COUNTS: &str =
    "SELECT projection, count(*) FROM parked_events GROUP BY projection ORDER BY projection";

/// The projections held in this process, per database file.
static HELD: LazyLock<Mutex<HashSet<(PathBuf, String)>>> = LazyLock::new(Mutex::default);

fn held() -> std::sync::MutexGuard<'static, HashSet<(PathBuf, String)>> {
    // Nothing panics while the lock is held, so a poisoned set is still consistent.
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`CheckpointStore`] in the SQLite `checkpoints` table.
///
/// [`save`](CheckpointStore::save) never moves a checkpoint back;
/// [`reset`](CheckpointStore::reset) does, as a rebuild. Leases are **in-process**: SQLite serves one process, so
/// [`try_acquire`](CheckpointStore::try_acquire) excludes the other runners of this
/// process on the same database file (whichever store or pool they use), not runners of
/// another process. Run the projections of one SQLite database in one process.
///
/// ```
/// use eventsource_runtime::projection::checkpoint::CheckpointStore;
/// use eventsource_runtime::sqlite::SqliteCheckpointStore;
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

pool_store!(SqliteCheckpointStore, "checkpoint store");

impl SqliteCheckpointStore {
    /// Runs `statement` (a save or a reset) for `projection` at `position`.
    async fn write(
        &self,
        statement: &'static str,
        projection: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        let (pool, projection) = (self.pool.clone(), projection.to_owned());
        detached(async move {
            sqlx::query(statement)
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
            Ok(position.map_or(0, to_u64))
        })
        .await
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.write(SAVE, projection, position).await
    }

    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.write(RESET, projection, position).await
    }

    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        if self.pool.is_closed() {
            return Err(unavailable(sqlx::Error::PoolClosed));
        }
        let key = (database_file(&self.pool), projection.to_owned());
        if !held().insert(key.clone()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SqliteLease { key })))
    }

    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        let query = sqlx::query(PARK)
            .bind(projection.to_owned())
            .bind(to_i64(event.position))
            .bind(event.error.clone())
            .bind(format_timestamp(event.parked_at));
        let pool = self.pool.clone();
        detached(async move {
            query.execute(&pool).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let (pool, projection) = (self.pool.clone(), projection.to_owned());
        detached(async move {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(PARKED)
                .bind(projection)
                .fetch_all(&pool)
                .await
                .map_err(unavailable)?;
            // Dates written by `park`; a row edited by hand still lists, dated now.
            let date = |at: &str| parse_timestamp(at).unwrap_or_else(|_| Utc::now());
            let parked = rows
                .into_iter()
                .map(|(p, e, at)| ParkedEvent::stored(p, e, date(&at)));
            Ok(parked.collect())
        })
        .await
    }

    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        let query = sqlx::query(UNPARK)
            .bind(projection.to_owned())
            .bind(to_i64(position));
        let pool = self.pool.clone();
        detached(async move {
            let done = query.execute(&pool).await.map_err(unavailable)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn forget(&self, projection: &str) -> Result<bool, StoreError> {
        let projection = projection.to_owned();
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let mut rows = 0;
            for statement in [FORGET_CHECKPOINT, FORGET_PARKED] {
                let done = sqlx::query(statement)
                    .bind(&projection)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                rows += done.rows_affected();
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(rows > 0)
        })
        .await
    }

    async fn request_retry(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        let query = sqlx::query(REQUEST_RETRY)
            .bind(projection.to_owned())
            .bind(to_i64(position))
            .bind(format_timestamp(Utc::now()));
        let pool = self.pool.clone();
        detached(async move {
            let done = query.execute(&pool).await.map_err(unavailable)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn retry_requests(&self, projection: &str) -> Result<Vec<u64>, StoreError> {
        let (pool, projection) = (self.pool.clone(), projection.to_owned());
        detached(async move {
            let rows: Vec<i64> = sqlx::query_scalar(RETRY_REQUESTS)
                .bind(projection)
                .fetch_all(&pool)
                .await
                .map_err(unavailable)?;
            Ok(rows.into_iter().map(to_u64).collect())
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        let pool = self.pool.clone();
        detached(async move {
            type Row = (String, i64, Option<String>, Option<String>, Option<String>);
            let rows: Vec<Row> = sqlx::query_as(CHECKPOINTS)
                .fetch_all(&pool)
                .await
                .map_err(unavailable)?;
            let records = rows
                .into_iter()
                .map(|(name, position, at, stopped_at, error)| {
                    let at = at.and_then(|at| parse_timestamp(&at).ok());
                    let stop = stopped_at
                        .and_then(|at| parse_timestamp(&at).ok())
                        .map(|at| RunnerStop::at(at, error.unwrap_or_default()));
                    CheckpointRecord::new(name, to_u64(position), at).with_stop(stop)
                });
            Ok(records.collect())
        })
        .await
    }

    async fn record_stop(&self, projection: &str, stop: &RunnerStop) -> Result<(), StoreError> {
        let query = sqlx::query(RECORD_STOP)
            .bind(projection.to_owned())
            .bind(format_timestamp(stop.at))
            .bind(stop.error.clone());
        let pool = self.pool.clone();
        detached(async move {
            query.execute(&pool).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn clear_stop(&self, projection: &str) -> Result<(), StoreError> {
        let query = sqlx::query(CLEAR_STOP).bind(projection.to_owned());
        let pool = self.pool.clone();
        detached(async move {
            query.execute(&pool).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn parked_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let pool = self.pool.clone();
        detached(async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(PARKED_COUNTS)
                .fetch_all(&pool)
                .await
                .map_err(unavailable)?;
            let counts = rows.into_iter().map(|(name, count)| (name, to_u64(count)));
            Ok(counts.collect())
        })
        .await
    }

    /// The holder when this process holds the lease; another process's is not seen (the
    /// leases are in-process).
    async fn lease_holder(&self, projection: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let key = (database_file(&self.pool), projection.to_owned());
        Ok(held().contains(&key).then(LeaseHolder::this_process))
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
