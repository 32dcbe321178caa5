//! Projection checkpoints in the PostgreSQL `checkpoints` table, with leases that exclude
//! runners of every process (session-level advisory locks, see [`PostgresLease`]), and the
//! events projections parked (`parked_events`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;

use super::lease::{DEFAULT_LEASE_TIMEOUT, LeaseStatements, PostgresLease};
use super::schema::{InvalidSchemaName, check_schema, lock_key, migrate, qualify};
use super::{pool_store, to_i64, to_u64, unavailable};
use crate::projection::checkpoint::{
    CheckpointRecord, CheckpointStore, LeaseHolder, ParkedEvent, ProjectionLease, RunnerStop,
};
use crate::store::StoreError;

const LOAD: &str = "SELECT position FROM __schema__.checkpoints WHERE projection = $1";
// Never back: a save that comes late leaves a further checkpoint as it is.
const SAVE: &str = "INSERT INTO __schema__.checkpoints (projection, position) VALUES ($1, $2) \
     ON CONFLICT (projection) DO UPDATE \
     SET position = GREATEST(checkpoints.position, excluded.position), updated_at = now()";
const RESET: &str = "INSERT INTO __schema__.checkpoints (projection, position) VALUES ($1, $2) \
     ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = now()";
const PARK: &str = "INSERT INTO __schema__.parked_events (projection, position, error, parked_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (projection, position) \
     DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at, \
     retry_requested_at = NULL";
const REQUEST_RETRY: &str = "UPDATE __schema__.parked_events SET retry_requested_at = now() \
     WHERE projection = $1 AND position = $2";
const RETRY_REQUESTS: &str = "SELECT position FROM __schema__.parked_events \
     WHERE projection = $1 AND retry_requested_at IS NOT NULL ORDER BY position";
const PARKED: &str = "SELECT position, error, parked_at FROM __schema__.parked_events \
     WHERE projection = $1 ORDER BY position";
const UNPARK: &str = "DELETE FROM __schema__.parked_events WHERE projection = $1 AND position = $2";
// The checkpoint and the parked events in one statement: how many rows went.
const FORGET: &str = "WITH c AS (DELETE FROM __schema__.checkpoints WHERE projection = $1 RETURNING 1), \
          p AS (DELETE FROM __schema__.parked_events WHERE projection = $1 RETURNING 1) \
     SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM p)";
const CHECKPOINTS: &str = "SELECT projection, position, updated_at, stopped_at, stop_error \
     FROM __schema__.checkpoints ORDER BY projection";
// A projection with no checkpoint yet gets one at 0, so that its stop is listed.
const RECORD_STOP: &str = "INSERT INTO __schema__.checkpoints (projection, position, stopped_at, stop_error) \
     VALUES ($1, 0, $2, $3) ON CONFLICT (projection) DO UPDATE \
     SET stopped_at = excluded.stopped_at, stop_error = excluded.stop_error";
const CLEAR_STOP: &str = "UPDATE __schema__.checkpoints SET stopped_at = NULL, stop_error = NULL \
     WHERE projection = $1 AND stopped_at IS NOT NULL";
const PARKED_COUNTS: &str = "SELECT projection, count(*) FROM __schema__.parked_events \
     GROUP BY projection ORDER BY projection";
// A session-level advisory lock on one bigint key shows in pg_locks as its high and low 32
// bits (classid, objid) with objsubid 1; the session holding it, in pg_stat_activity.
const LEASE_HOLDER: &str = "SELECT a.pid, a.application_name, host(a.client_addr), a.backend_start \
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
        AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()) \
        AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
      LIMIT 1";

#[derive(Debug)]
struct Statements {
    schema: String,
    load: String,
    save: String,
    reset: String,
    park: String,
    parked: String,
    unpark: String,
    forget: String,
    request_retry: String,
    retry_requests: String,
    checkpoints: String,
    parked_counts: String,
    record_stop: String,
    clear_stop: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            load: qualify(LOAD, schema),
            save: qualify(SAVE, schema),
            reset: qualify(RESET, schema),
            park: qualify(PARK, schema),
            parked: qualify(PARKED, schema),
            unpark: qualify(UNPARK, schema),
            forget: qualify(FORGET, schema),
            request_retry: qualify(REQUEST_RETRY, schema),
            retry_requests: qualify(RETRY_REQUESTS, schema),
            checkpoints: qualify(CHECKPOINTS, schema),
            parked_counts: qualify(PARKED_COUNTS, schema),
            record_stop: qualify(RECORD_STOP, schema),
            clear_stop: qualify(CLEAR_STOP, schema),
        }
    }
}

/// A [`CheckpointStore`] in the PostgreSQL `checkpoints` table, whose leases exclude the
/// runners of **every process** on the database.
///
/// [`save`](CheckpointStore::save) never moves a checkpoint back (`GREATEST` of the saved
/// and the new position, in one statement); [`reset`](CheckpointStore::reset) does, as a
/// rebuild. [`try_acquire`](CheckpointStore::try_acquire) opens a connection
/// of its own (outside the pool) and takes a session-level advisory lock keyed by the
/// schema and the projection's name (`pg_try_advisory_lock`, 64-bit FNV-1a of both); the
/// returned [`PostgresLease`] keeps that connection, and the lock, until it is released or
/// dropped. If the connection dies (the server restarts, the backend is terminated), the
/// lock goes with it: the lease's [`is_held`](ProjectionLease::is_held) turns `false` at
/// once (within `3/4` of the [`lease_timeout`](Self::lease_timeout) when the connection
/// goes silent instead), and [`save_leased`](CheckpointStore::save_leased), which runs on
/// the lease's own session, fails with [`StoreError::LeaseLost`] instead of saving.
///
/// Parked events are kept in the `parked_events` table (schema version 2).
///
/// ```no_run
/// use eventsource_runtime::projection::checkpoint::CheckpointStore;
/// use eventsource_runtime::postgres::PostgresCheckpointStore;
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
    lease_timeout: Duration,
}

pool_store!(PostgresCheckpointStore, "checkpoint store");

impl PostgresCheckpointStore {
    pub(super) fn on(pool: PgPool, schema: &str) -> Self {
        Self {
            pool,
            sql: Arc::new(Statements::new(schema)),
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
        }
    }

    /// Builder: how long a lease's session may go silent (a network partition, a host that
    /// vanished) before the lease is lost, [`DEFAULT_LEASE_TIMEOUT`] (10 s) unless told;
    /// at least one second. With a timeout `T`, a holder cut off from the database stops
    /// handling within `3T/4` (it counts the lease as held only that long after the last
    /// round trip the server answered, sending one every `T/4`), and the server frees the
    /// lock within `5T/4` for a standby to take (the session's `tcp_user_timeout` and
    /// keepalives). A holder paused that long (its kernel still answering for it) has its
    /// session ended by the next runner that tries to take the lease. Shorter: faster
    /// takeovers, and a lease given up on a shorter stall of the network or the server.
    /// Give every runner of a projection the same timeout: a standby with a shorter one
    /// would end a holder that is only slow.
    #[must_use]
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.lease_timeout = timeout.max(Duration::from_secs(1));
        self
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

    /// Saves the checkpoint on `connection` (inside the caller's transaction).
    pub(super) async fn save_on(
        &self,
        connection: &mut sqlx::PgConnection,
        projection: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql.save)
            .bind(projection)
            .bind(to_i64(position))
            .execute(connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The PostgreSQL schema its tables are in.
    pub(super) fn schema(&self) -> &str {
        &self.sql.schema
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// [`try_acquire`](CheckpointStore::try_acquire), with the lease as its own type.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store's pool is closed or no connection can be
    /// opened.
    pub async fn try_acquire_lease(
        &self,
        projection: &str,
    ) -> Result<Option<PostgresLease>, StoreError> {
        if self.pool.is_closed() {
            return Err(unavailable(sqlx::Error::PoolClosed));
        }
        let options = (*self.pool.connect_options()).clone();
        let key = self.lease_key(projection);
        let statements = LeaseStatements {
            save: self.sql.save.clone(),
            reset: self.sql.reset.clone(),
        };
        PostgresLease::try_take(options, projection, key, statements, self.lease_timeout).await
    }

    /// The advisory lock key of `projection`'s lease.
    fn lease_key(&self, projection: &str) -> i64 {
        lock_key(&["eventsource.projection", &self.sql.schema, projection])
    }

    /// Runs `sql` on `projection`'s parked event at `position`: whether there was one.
    async fn parked_event_changed(
        &self,
        sql: &str,
        projection: &str,
        position: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(projection)
            .bind(to_i64(position))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    /// Runs `sql`, a save or a reset, for `projection` at `position`.
    async fn write_position(
        &self,
        sql: &str,
        projection: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(sql)
            .bind(projection)
            .bind(to_i64(position))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
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
        Ok(position.map_or(0, to_u64))
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.write_position(&self.sql.save, projection, position)
            .await
    }

    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.write_position(&self.sql.reset, projection, position)
            .await
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

    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        sqlx::query(&self.sql.park)
            .bind(projection)
            .bind(to_i64(event.position))
            .bind(&event.error)
            .bind(event.parked_at)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(&self.sql.parked)
            .bind(projection)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let parked = rows
            .into_iter()
            .map(|(p, e, at)| ParkedEvent::stored(p, e, at));
        Ok(parked.collect())
    }

    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.parked_event_changed(&self.sql.unpark, projection, position)
            .await
    }

    async fn forget(&self, projection: &str) -> Result<bool, StoreError> {
        let rows: i64 = sqlx::query_scalar(&self.sql.forget)
            .bind(projection)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(rows > 0)
    }

    async fn request_retry(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.parked_event_changed(&self.sql.request_retry, projection, position)
            .await
    }

    async fn retry_requests(&self, projection: &str) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(&self.sql.retry_requests)
            .bind(projection)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(rows.into_iter().map(to_u64).collect())
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        type Row = (
            String,
            i64,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(&self.sql.checkpoints)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let records = rows
            .into_iter()
            .map(|(name, position, at, stopped_at, error)| {
                let stop = stopped_at.map(|at| RunnerStop::at(at, error.unwrap_or_default()));
                CheckpointRecord::new(name, to_u64(position), Some(at)).with_stop(stop)
            });
        Ok(records.collect())
    }

    async fn record_stop(&self, projection: &str, stop: &RunnerStop) -> Result<(), StoreError> {
        sqlx::query(&self.sql.record_stop)
            .bind(projection)
            .bind(stop.at)
            .bind(&stop.error)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn clear_stop(&self, projection: &str) -> Result<(), StoreError> {
        sqlx::query(&self.sql.clear_stop)
            .bind(projection)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn parked_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&self.sql.parked_counts)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let counts = rows.into_iter().map(|(name, count)| (name, to_u64(count)));
        Ok(counts.collect())
    }

    /// The session holding the lease's advisory lock, from `pg_locks` and
    /// `pg_stat_activity` (a role without `pg_read_all_stats` sees the other roles'
    /// sessions without their application and address).
    async fn lease_holder(&self, projection: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let key = u64::from_ne_bytes(self.lease_key(projection).to_ne_bytes());
        let (high, low) = (to_i64(key >> 32), to_i64(key & 0xffff_ffff));
        let row: Option<(i32, Option<String>, Option<String>, Option<DateTime<Utc>>)> =
            sqlx::query_as(LEASE_HOLDER)
                .bind(high)
                .bind(low)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(row.map(|(pid, application, client, since)| {
            LeaseHolder::session(u32::try_from(pid).ok(), application, client, since)
        }))
    }
}
