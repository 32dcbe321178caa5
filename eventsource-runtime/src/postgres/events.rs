//! The PostgreSQL event store: appends through `eventsource_append`, reads below the
//! high-water mark, notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{PgExecutor, Row};

use super::rows::{Batch, is_version_taken};
use super::schema::{InvalidSchemaName, check_schema, migrate};
use super::statements::Statements;
use super::{
    DEFAULT_IDLE_TRANSACTION_TIMEOUT, DEFAULT_SCHEMA, EVENTS_TABLE, PostgresCheckpointStore,
    PostgresProcessedMessages, PostgresSnapshotStore, listen, namespace_of, open_pool,
    store_telemetry, to_u64, unavailable,
};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::store::backend::{Backend, append_traced};
use crate::store::{AppendResult, ExpectedVersion, StoreError, StoreTelemetry, VersionConflict};

/// An [`EventStore`](crate::store::EventStore) in a PostgreSQL database, shared by as many processes as you like.
///
/// Cloning is cheap; clones share the pool and the
/// [`appended_signal`](crate::store::EventStore::appended_signal). See the [module](super) for the
/// schema, how appends stay all-or-nothing, and the high-water mark that keeps `read_all`
/// from passing over an event that commits late.
///
/// Errors: a failed expectation (or a unique violation on the stream's version) is
/// [`StoreError::Conflict`] with the expected and actual versions; a stream id with a NUL
/// character (which PostgreSQL cannot hold) is [`StoreError::InvalidStreamId`] for every
/// operation, and an event holding one (in its type, payload or metadata)
/// [`StoreError::Serialize`]; an unreadable row is [`StoreError::Corrupt`]; everything else the database or the connection reports
/// (refused, lost, pool closed or exhausted) is [`StoreError::Unavailable`], and appended
/// nothing (unless the connection was lost during the commit itself, which no client can
/// tell apart).
///
/// Spans: the contract's CLIENT spans with `db.system.name` = `postgresql`,
/// `db.collection.name` = `events`, `db.operation.name` = `append`, `load`, `read_all` or
/// `events_by_correlation`, `server.address` and `server.port`; `db.query.text` only after
/// [`record_query_text(true)`](crate::store::WithStoreTelemetry::record_query_text).
///
/// ```no_run
/// use eventsource_runtime::postgres::PostgresEventStore;
/// use eventsource_runtime::sqlx::PgPool;
/// use eventsource_runtime::store::{EventStore, WithStoreTelemetry};
///
/// # async fn run(pool: PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// // On a pool you configured, in a schema of its own, with the SQL on the spans.
/// let store = PostgresEventStore::from_pool(pool)
///     .with_schema("billing")?
///     .record_query_text(true);
/// store.migrate().await?;
/// assert_eq!(store.system_name(), "postgresql");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresEventStore {
    pub(super) pool: PgPool,
    pub(super) sql: Arc<Statements>,
    /// The highest high-water mark this store (or a clone) computed: every position below
    /// it is committed or never will be, for good, so a read entirely below it needs no
    /// new mark (0: none known).
    pub(super) known_mark: Arc<AtomicU64>,
    pub(super) telemetry: Arc<StoreTelemetry>,
    pub(super) signal: Arc<listen::Signal>,
    /// How long a transaction that appended through `append_in_transaction` may sit idle.
    idle_transaction_timeout: Duration,
    /// How long a round trip may wait for the server's answer.
    pub(super) answer_timeout: Duration,
}

impl std::fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("server", &self.telemetry.server)
            .field("schema", &self.sql.schema)
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

impl PostgresEventStore {
    /// Connects to the database at `url` (`postgres://user:password@host:5432/database`,
    /// any option sqlx's `PgConnectOptions` reads) with a pool of [`POOL_SIZE`](super::POOL_SIZE) connections
    /// that waits up to [`ACQUIRE_TIMEOUT`](super::ACQUIRE_TIMEOUT) for one and pings a connection
    /// that sat idle for [`PING_AFTER_IDLE`](super::PING_AFTER_IDLE) or longer before handing it
    /// out. Call [`migrate`](Self::migrate) before the first use.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is invalid or the database cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(open_pool(url).await?))
    }

    /// A store on an existing pool, in the `public` schema.
    ///
    /// The pool must leave transactions at PostgreSQL's default isolation level, READ
    /// COMMITTED (`read_all` refuses to run under another one).
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        let telemetry = store_telemetry(&pool, EVENTS_TABLE, DEFAULT_SCHEMA);
        let sql = Statements::new(DEFAULT_SCHEMA);
        Self {
            signal: Arc::new(listen::Signal::new(sql.channel.clone())),
            known_mark: Arc::new(AtomicU64::new(0)),
            sql: Arc::new(sql),
            pool,
            telemetry: Arc::new(telemetry),
            idle_transaction_timeout: DEFAULT_IDLE_TRANSACTION_TIMEOUT,
            answer_timeout: super::DEFAULT_ANSWER_TIMEOUT,
        }
    }

    /// Builder: how long each of the store's round trips (an append, a load, a read of the
    /// log, ...) waits for the server's answer before it fails with
    /// [`StoreError::Unavailable`] ([`DEFAULT_ANSWER_TIMEOUT`](super::DEFAULT_ANSWER_TIMEOUT),
    /// 30 s, unless told; `Duration::ZERO`: as long as the operating system keeps the
    /// connection). A server whose host vanished, or a network that drops every packet,
    /// answers nothing, and the operating system gives up on the connection only after its
    /// retransmissions (about 15 minutes on Linux). An append cut short this way may have
    /// committed: its outcome is unknown (load the stream, or append again with the version
    /// expected, to know). Give it room over your slowest query.
    #[must_use]
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// Builder: how long a transaction that appended through
    /// [`append_in_transaction`](Self::append_in_transaction) may sit idle before the server
    /// ends it ([`DEFAULT_IDLE_TRANSACTION_TIMEOUT`], 10 s, unless told; `Duration::ZERO`:
    /// never). Until it ends, it holds the high-water mark below its events, and every
    /// reader (projections, the relay) waits: a process paused inside it, or cut off from
    /// the database, would hold them all. The price: a transaction idle longer than this
    /// (between two of its statements) is ended by the server, its work rolled back.
    /// [`EventStore::mark_holder`](crate::store::EventStore::mark_holder) names the session
    /// that holds the mark.
    #[must_use]
    pub fn idle_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_transaction_timeout = timeout;
        self
    }

    /// Keeps the tables in `schema` instead of `public` (created by
    /// [`migrate`](Self::migrate) when missing). Each schema is a separate store: its own
    /// events, positions, notifications and leases.
    ///
    /// # Errors
    /// [`InvalidSchemaName`] unless `schema` is 1 to 63 of `a-z`, `0-9`, `_`, not starting
    /// with a digit.
    pub fn with_schema(mut self, schema: &str) -> Result<Self, InvalidSchemaName> {
        let schema = check_schema(schema)?;
        let sql = Statements::new(&schema);
        Arc::make_mut(&mut self.telemetry).namespace =
            Some(namespace_of(&self.pool.connect_options(), &schema));
        self.signal = Arc::new(listen::Signal::new(sql.channel.clone()));
        self.known_mark = Arc::new(AtomicU64::new(0));
        self.sql = Arc::new(sql);
        Ok(self)
    }

    /// Creates the schema, the tables of all three PostgreSQL stores and the functions
    /// (see [`SCHEMA`](super::SCHEMA)) where missing, in one transaction. Idempotent, and safe to run
    /// from several processes at once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool, &self.sql.schema).await?;
        let newest: i64 = sqlx::query_scalar(&self.sql.max_position)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        self.signal.advance(to_u64(newest));
        Ok(())
    }

    /// Whether [`migrate`](Self::migrate) made the store in this schema (its events table is
    /// there): an operator's tool tells a schema never migrated, or a typo, from an empty
    /// store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        let table = format!("\"{}\".events", self.sql.schema.replace('"', "\"\""));
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    /// The connection pool, e.g. to share it with other stores or close it.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The PostgreSQL schema the tables are in.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.sql.schema
    }

    /// A snapshot store on the same pool and schema.
    #[must_use]
    pub fn snapshot_store(&self) -> PostgresSnapshotStore {
        PostgresSnapshotStore::on(self.pool.clone(), &self.sql.schema)
    }

    /// A checkpoint store on the same pool and schema.
    #[must_use]
    pub fn checkpoint_store(&self) -> PostgresCheckpointStore {
        PostgresCheckpointStore::on(self.pool.clone(), &self.sql.schema)
    }

    /// A store of [idempotent handlers](crate::bus::Idempotent)' handled messages on the
    /// same pool and schema.
    #[must_use]
    pub fn processed_messages(&self) -> PostgresProcessedMessages {
        PostgresProcessedMessages::on(self.pool.clone(), &self.sql.schema)
    }

    /// Closes the pool (of every clone) and waits for its connections to close. Every
    /// operation fails with [`StoreError::Unavailable`] afterwards, and the
    /// notification listener stops.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Appends as [`EventStore::append`](crate::store::EventStore::append) does, but as part of the caller's transaction (or
    /// connection): the events commit or roll back with whatever else it writes, e.g. a
    /// read model or an outbox row.
    ///
    /// Until that transaction ends, other writers of the stream wait for it, and
    /// `read_all` stops before the events' positions (they would otherwise be passed over
    /// if they committed after later events). Keep such transactions short. The
    /// connection must be one of this database's, at the READ COMMITTED isolation level.
    ///
    /// ```no_run
    /// use eventsource_runtime::event::{NewEvent, StreamId};
    /// use eventsource_runtime::postgres::PostgresEventStore;
    /// use eventsource_runtime::sqlx;
    /// use eventsource_runtime::store::ExpectedVersion;
    ///
    /// # async fn run(store: PostgresEventStore) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = store.pool().begin().await?;
    /// let stream = StreamId::new("Order", "o-1");
    /// let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": 12 }));
    /// store
    ///     .append_in_transaction(&mut tx, &stream, ExpectedVersion::NoStream, vec![placed])
    ///     .await?;
    /// sqlx::query("INSERT INTO order_summaries (id, total) VALUES ($1, $2)")
    ///     .bind("o-1")
    ///     .bind(12)
    ///     .execute(&mut *tx)
    ///     .await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The transaction is bounded: it sets `idle_in_transaction_session_timeout` (`SET
    /// LOCAL`, for the rest of the transaction) to the store's
    /// [`idle_transaction_timeout`](Self::idle_transaction_timeout), so a process that stops
    /// inside it (paused, cut off) cannot hold every reader for longer. That costs one
    /// round trip more per call (none with the timeout at `Duration::ZERO`).
    ///
    /// # Errors
    /// As [`EventStore::append`](crate::store::EventStore::append). After an error the transaction is aborted (PostgreSQL
    /// refuses further statements until it is rolled back).
    pub async fn append_in_transaction(
        &self,
        connection: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if !self.idle_transaction_timeout.is_zero() {
            let bound =
                sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
                    .bind(self.idle_transaction_timeout.as_millis().to_string())
                    .execute(&mut *connection);
            self.answered(async { bound.await.map_err(unavailable) })
                .await?;
        }
        append_traced(self, stream, expected, events, |events| {
            self.answered(self.append_rows(Some(connection), stream, expected, events))
        })
        .await
    }

    /// The highest high-water mark known (0: none): every position below it is final.
    pub(super) fn known_mark(&self) -> u64 {
        self.known_mark.load(Ordering::Acquire)
    }

    /// A page of one stream: `stream_type = $1 AND stream_id = $2 AND version >= $3`,
    /// `LIMIT $4`.
    pub(super) fn load_page_query(&self) -> &str {
        &self.sql.load_page
    }

    /// The keyset read below a known mark: `position >= $1 AND position < $2`, `LIMIT $3`.
    pub(super) fn read_below_query(&self) -> &str {
        &self.sql.read_below
    }

    /// Computes the high-water mark now, keeps it if it is the highest known, and returns it.
    pub(super) async fn current_mark(&self) -> Result<u64, StoreError> {
        let mark: i64 = sqlx::query_scalar(&self.sql.high_water_mark)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        let mark = to_u64(mark);
        self.known_mark.fetch_max(mark, Ordering::AcqRel);
        Ok(mark)
    }

    /// Computes the high-water mark now and keeps it if it is the highest known (a failure
    /// only leaves the next reads to the function).
    pub(super) async fn learn_mark(&self) {
        let _ = self.current_mark().await;
    }

    async fn call_append<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        stream: &StreamId,
        expected: i64,
        batch: &Batch,
    ) -> Result<(i64, bool, Option<Vec<i64>>), sqlx::Error> {
        let row = sqlx::query(&self.sql.append)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .bind(expected)
            .bind(&batch.ids)
            .bind(&batch.types)
            .bind(&batch.schema_versions)
            .bind(&batch.recorded_at)
            .bind(&batch.nanos)
            .bind(&batch.payloads)
            .bind(&batch.metadata)
            .bind(&self.sql.channel)
            .fetch_one(executor)
            .await?;
        Ok((
            row.try_get("actual")?,
            row.try_get("conflict")?,
            row.try_get("positions")?,
        ))
    }

    pub(super) async fn append_rows(
        &self,
        mut connection: Option<&mut PgConnection>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let batch = Batch::new(stream, &events)?;
        let conflict = |actual: u64| -> StoreError {
            VersionConflict {
                stream: stream.clone(),
                expected,
                actual,
            }
            .into()
        };
        let mut retries = 0;
        let (actual, positions) = loop {
            let called = match connection.as_deref_mut() {
                Some(connection) => {
                    self.call_append(connection, stream, expected.as_i64(), &batch)
                        .await
                }
                None => {
                    self.call_append(&self.pool, stream, expected.as_i64(), &batch)
                        .await
                }
            };
            match called {
                Ok((actual, true, _)) => return Err(conflict(to_u64(actual))),
                Ok((actual, false, positions)) => break (actual, positions.unwrap_or_default()),
                // A writer that went around `eventsource_append` took the version (or the
                // caller's transaction reads an old snapshot): a conflict, unless no
                // version was expected and the append can simply be tried again.
                Err(e) if is_version_taken(&e) => {
                    if expected == ExpectedVersion::Any && connection.is_none() && retries < 10 {
                        retries += 1;
                        continue;
                    }
                    return Err(conflict(self.version(stream).await?));
                }
                Err(e) => return Err(unavailable(e)),
            }
        };
        let actual = to_u64(actual);
        if positions.len() != events.len() {
            return Err(StoreError::Unavailable(
                format!(
                    "eventsource_append returned {} positions for {} events",
                    positions.len(),
                    events.len()
                )
                .into(),
            ));
        }
        let appended: Vec<EventEnvelope> = events
            .into_iter()
            .zip(positions)
            .enumerate()
            .map(|(offset, (event, position))| EventEnvelope {
                event_id: event.event_id,
                stream: stream.clone(),
                version: actual + offset as u64 + 1,
                position: to_u64(position),
                event_type: event.event_type,
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                payload: event.payload,
                metadata: event.metadata,
            })
            .collect();
        if connection.is_none()
            && let Some(last) = appended.last()
        {
            self.signal.advance(last.position);
        }
        Ok(AppendResult {
            version: actual + appended.len() as u64,
            events: appended,
        })
    }
}
