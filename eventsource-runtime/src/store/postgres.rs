//! The PostgreSQL stores (feature `postgres`): events, snapshots and projection checkpoints
//! in one database that several processes share, through [sqlx](https://docs.rs/sqlx) with
//! runtime queries.
//!
//! # Schema
//!
//! The three stores share one schema, [`SCHEMA`], which `migrate()` on any of them applies
//! as a whole, in one transaction (idempotent: run it at every start, from any store and
//! any number of processes at once). Its tables live in a PostgreSQL schema of your choice
//! (`public` unless you call `with_schema`, which also lets tests isolate themselves):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `events` | `position bigint GENERATED ALWAYS AS IDENTITY`, `UNIQUE (stream_type, stream_id, version)` | event id (`uuid`), event type, schema version, `recorded_at timestamptz` (+ `recorded_at_nanos`, so timestamps round-trip to the nanosecond), `payload jsonb`, `metadata jsonb` |
//! | `snapshots` | `(stream_type, stream_id)` | the newest snapshot per stream (`state jsonb`) |
//! | `checkpoints` | `projection` | each projection's checkpoint |
//!
//! Applied versions are recorded in `eventsource_schema_migrations`. The schema also holds
//! three functions: `eventsource_append` (an append, in one statement),
//! `eventsource_read_all` and `eventsource_high_water_mark`. PostgreSQL 13 or later.
//!
//! # Appends
//!
//! An append is one statement, hence one transaction: all of the batch or none of it. It
//! takes a transaction-level advisory lock on its stream, so concurrent writers of one
//! stream take turns, reads the stream's version, and fails with the typed
//! [`VersionConflict`] (expected and actual) when it is not the expected one. A unique
//! violation on `(stream_type, stream_id, version)` (from a writer that went around these
//! functions) is reported the same way, with the actual version read again.
//!
//! # `read_all` and transactions that commit late
//!
//! Positions come from a sequence, so they are handed out in the order appends *start*
//! inserting, not the order they commit: an append can hold position 7, still
//! uncommitted, while position 8 is committed and visible. A projection that read 8 and
//! saved it as its checkpoint would never see 7. `read_all` therefore stops at a
//! **high-water mark**: the lowest position held by an append still in flight (or the
//! next position to be handed out when none is), and only returns events below it.
//!
//! - Each append allocates its positions under a short advisory lock (the sequencing
//!   lock, held only for the `INSERT`, released before the commit) and, in the same
//!   critical section, takes a shared transaction-level advisory lock whose key carries its
//!   first position: a registration that lasts until it commits or aborts.
//! - A reader takes the sequencing lock shared (so no append is between allocating and
//!   registering), reads the registrations from `pg_locks` and the sequence's last value,
//!   releases the lock, and then reads the events with a fresh snapshot.
//!
//! Every position below the mark belongs to a transaction that had finished when the mark
//! was computed, so the later snapshot sees it, unless it aborted (a gap that never
//! fills). Only appends to the same `events` table delay a reader, and only while they are
//! in flight: unrelated transactions (long reports, other schemas) do not.
//!
//! (A common shortcut, storing each row's transaction id and returning only rows whose id
//! is below `pg_snapshot_xmin(pg_current_snapshot())`, is not enough on its own: a
//! transaction gets its id when it first writes, not when it takes its position, so an
//! older transaction can take a *higher* position than a younger one, commit first, and be
//! returned while the younger one, holding the lower position, is still in flight. It also
//! lets any long transaction anywhere in the cluster hold every reader back.)
//!
//! Everything must be written through these functions (the stores do): a plain `INSERT`
//! into `events` bypasses the registration.
//!
//! # Notifications
//!
//! Each append sends `NOTIFY` (in its transaction, so on commit) on a channel per schema,
//! with its last position. [`appended_signal`](EventStore::appended_signal) starts a task
//! that `LISTEN`s on its own connection and feeds a watch channel; when the connection is
//! lost it reconnects with backoff (and wakes the followers, who may have missed
//! notifications meanwhile), and it stops when the pool is closed or the store dropped.
//!
//! ```no_run
//! use eventsource_runtime::event::{NewEvent, StreamId};
//! use eventsource_runtime::store::{EventStore, ExpectedVersion, PostgresEventStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresEventStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
//! store.migrate().await?;
//!
//! let stream = StreamId::new("Order", "o-1");
//! let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": 12 }));
//! store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await?;
//! assert_eq!(store.stream_version(&stream).await?, 1);
//!
//! // The snapshot and checkpoint stores share the event store's pool and schema.
//! let snapshots = store.snapshot_store();
//! let checkpoints = store.checkpoint_store();
//! # let _ = (snapshots, checkpoints);
//! # Ok(()) }
//! ```

mod checkpoint;
mod listen;
mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor as _, PgExecutor, Row};
use uuid::Uuid;

use super::sql_row::StoredRow;
use super::{
    AppendResult, AppendSignal, EventStore, ExpectedVersion, StoreError, VersionConflict,
    instrument,
};
use crate::event::{EventEnvelope, NewEvent, Payload, StreamId};
use crate::telemetry::config::{StoreSpanNames, StoreTelemetry};

pub use checkpoint::{PostgresCheckpointStore, PostgresLease};
pub use snapshot::PostgresSnapshotStore;
/// The sqlx these stores are built on, to make pools ([`from_pool`](PostgresEventStore::from_pool))
/// and transactions ([`append_in_transaction`](PostgresEventStore::append_in_transaction))
/// with the same version.
pub use sqlx;

/// The schema of the PostgreSQL stores (tables `events`, `snapshots`, `checkpoints` and
/// the functions appends and reads go through), as applied by `migrate()`, with
/// `__schema__` standing for the quoted schema name.
pub const SCHEMA: &str = include_str!("postgres/schema.sql");

/// The schema's versions, in order; `migrate()` applies those not yet recorded.
const MIGRATIONS: &[(i64, &str)] = &[(1, SCHEMA)];

/// `db.system.name` of the PostgreSQL stores.
pub const SYSTEM: &str = "postgresql";

/// `db.collection.name` of the event store: the events table.
pub const EVENTS_TABLE: &str = "events";

/// The schema the stores use unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// Connections of a pool opened by `connect`.
pub const POOL_SIZE: u32 = 10;

/// How long `connect`'s pool waits for a connection before an operation fails with
/// [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The placeholder for the quoted schema name in [`SCHEMA`] and the stores' statements.
const PLACEHOLDER: &str = "__schema__";

/// A schema name the stores refuse: one to 63 of `a-z`, `0-9` and `_`, not starting with a
/// digit (a plain identifier, so it means the same quoted or not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid PostgreSQL schema name `{0}`: use 1 to 63 characters among a-z, 0-9 and _, \
     not starting with a digit"
)]
pub struct InvalidSchemaName(pub String);

/// A checked schema name.
pub(crate) fn check_schema(name: &str) -> Result<String, InvalidSchemaName> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(name.to_owned())
    } else {
        Err(InvalidSchemaName(name.to_owned()))
    }
}

/// `template` with its placeholder replaced by the quoted `schema`.
pub(crate) fn qualify(template: &str, schema: &str) -> String {
    template.replace(PLACEHOLDER, &format!("\"{schema}\""))
}

/// The backend failed.
pub(crate) fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// A count, version or position as PostgreSQL's bigint (saturating).
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stable 64-bit key (FNV-1a) for advisory locks, from `parts` separated by NUL.
pub(crate) fn lock_key(parts: &[&str]) -> i64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash = hash.wrapping_mul(PRIME); // a 0 byte between parts
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A timestamp as stored: whole microseconds (what `timestamptz` holds) and the
/// nanoseconds below them.
pub(crate) fn split_timestamp(timestamp: DateTime<Utc>) -> (DateTime<Utc>, i32) {
    let nanos = timestamp.timestamp_subsec_nanos() % 1000;
    let micros = timestamp - TimeDelta::nanoseconds(i64::from(nanos));
    (micros, i32::try_from(nanos).unwrap_or(0))
}

/// A stored timestamp, if its nanoseconds are in range.
pub(crate) fn join_timestamp(micros: DateTime<Utc>, nanos: i32) -> Option<DateTime<Utc>> {
    (0..1000)
        .contains(&nanos)
        .then(|| micros + TimeDelta::nanoseconds(i64::from(nanos)))
}

/// Whether `value` holds a NUL character, which PostgreSQL's `jsonb` and `text` refuse.
pub(crate) fn has_nul(value: &Payload) -> bool {
    match value {
        Payload::String(s) => s.contains('\0'),
        Payload::Array(items) => items.iter().any(has_nul),
        Payload::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The error for a value PostgreSQL cannot store, as a serialization failure.
pub(crate) fn unstorable(event_type: &str, what: &str) -> StoreError {
    StoreError::Serialize {
        event_type: event_type.to_owned(),
        source: <serde_json::Error as serde::ser::Error>::custom(format!(
            "{what} contains a NUL character, which PostgreSQL cannot store"
        )),
    }
}

/// `server.address` and `server.port` of a pool's database.
pub(crate) fn server_of(options: &PgConnectOptions) -> (String, u16) {
    let address = options.get_socket().map_or_else(
        || options.get_host().to_owned(),
        |socket| socket.display().to_string(),
    );
    (address, options.get_port())
}

/// Opens a pool as `connect` describes.
pub(crate) async fn open_pool(url: &str) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(unavailable)?;
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(unavailable)
}

/// Applies the schema's missing versions in one transaction. Concurrent migrations of one
/// database take turns.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&["eventsource.migrate"]))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
    if !exists {
        (&mut *tx)
            .execute(qualify("CREATE SCHEMA __schema__", schema).as_str())
            .await
            .map_err(unavailable)?;
    }
    (&mut *tx)
        .execute(
            qualify(
                "CREATE TABLE IF NOT EXISTS __schema__.eventsource_schema_migrations (\
                 version bigint NOT NULL PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
            .as_str(),
        )
        .await
        .map_err(unavailable)?;
    let applied: Vec<i64> = sqlx::query_scalar(&qualify(
        "SELECT version FROM __schema__.eventsource_schema_migrations",
        schema,
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    for &(version, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        // No parameters: the simple query protocol, which runs several statements.
        (&mut *tx)
            .execute(qualify(sql, schema).as_str())
            .await
            .map_err(unavailable)?;
        sqlx::query(&qualify(
            "INSERT INTO __schema__.eventsource_schema_migrations (version) VALUES ($1)",
            schema,
        ))
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}

/// The event store's statements, for one schema.
#[derive(Debug)]
struct Statements {
    schema: String,
    /// The `NOTIFY` channel of the schema's appends.
    channel: String,
    append: String,
    load: String,
    read_all: String,
    version: String,
    max_position: String,
}

const COLUMNS: &str = "position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, recorded_at, recorded_at_nanos, payload::text AS payload, \
     metadata::text AS metadata";

impl Statements {
    fn new(schema: &str) -> Self {
        let channel = format!("eventsource_{schema}");
        let channel = if channel.len() < 64 {
            channel
        } else {
            format!(
                "eventsource_{:016x}",
                u64::from_ne_bytes(lock_key(&[schema]).to_ne_bytes())
            )
        };
        Self {
            schema: schema.to_owned(),
            channel,
            append: qualify(
                "SELECT actual, conflict, positions FROM __schema__.eventsource_append(\
                     $1, $2, $3, $4, $5, $6, $7, $8, $9::text[]::jsonb[], $10::text[]::jsonb[], $11)",
                schema,
            ),
            load: qualify(
                &format!(
                    "SELECT {COLUMNS} FROM __schema__.events \
                     WHERE stream_type = $1 AND stream_id = $2 AND version >= $3 ORDER BY version"
                ),
                schema,
            ),
            read_all: qualify(
                &format!("SELECT {COLUMNS} FROM __schema__.eventsource_read_all($1, $2)"),
                schema,
            ),
            version: qualify(
                "SELECT coalesce(max(version), 0) FROM __schema__.events \
                 WHERE stream_type = $1 AND stream_id = $2",
                schema,
            ),
            max_position: qualify(
                "SELECT coalesce(max(position), 0) FROM __schema__.events",
                schema,
            ),
        }
    }
}

/// A batch ready to bind: one array per column.
struct Batch {
    ids: Vec<Uuid>,
    types: Vec<String>,
    schema_versions: Vec<i64>,
    recorded_at: Vec<DateTime<Utc>>,
    nanos: Vec<i32>,
    payloads: Vec<String>,
    metadata: Vec<String>,
}

impl Batch {
    /// Serializes `events`; a failure (or a value PostgreSQL cannot hold) appends nothing.
    fn new(stream: &StreamId, events: &[NewEvent]) -> Result<Self, StoreError> {
        let mut batch = Self {
            ids: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            recorded_at: Vec::with_capacity(events.len()),
            nanos: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
        };
        let nul_in_stream =
            stream.aggregate_type().contains('\0') || stream.aggregate_id().contains('\0');
        for event in events {
            let event_type = event.event_type.as_ref();
            let err = |source| StoreError::Serialize {
                event_type: event_type.to_owned(),
                source,
            };
            if event_type.contains('\0') {
                return Err(unstorable(event_type, "the event type"));
            }
            if nul_in_stream {
                return Err(unstorable(event_type, "the stream id"));
            }
            if has_nul(&event.payload) {
                return Err(unstorable(event_type, "the payload"));
            }
            if event
                .metadata
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
            {
                return Err(unstorable(event_type, "the metadata"));
            }
            let (micros, nanos) = split_timestamp(event.timestamp);
            batch.ids.push(event.event_id);
            batch.types.push(event_type.to_owned());
            batch.schema_versions.push(i64::from(event.schema_version));
            batch.recorded_at.push(micros);
            batch.nanos.push(nanos);
            batch
                .payloads
                .push(serde_json::to_string(&event.payload).map_err(err)?);
            batch
                .metadata
                .push(serde_json::to_string(&event.metadata).map_err(err)?);
        }
        Ok(batch)
    }
}

/// Whether `error` is the unique violation of a stream's version.
fn is_version_taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if e.is_unique_violation() && e.constraint() == Some("events_stream_version_key"))
}

/// Reads one stored event; anything unreadable is [`StoreError::Corrupt`], never a panic.
fn decode(row: &PgRow) -> Result<EventEnvelope, StoreError> {
    StoredRow::new(row).envelope(|stored| {
        let event_id = stored.get::<Uuid>("event_id")?;
        let micros = stored.get::<DateTime<Utc>>("recorded_at")?;
        let nanos = stored.get::<i32>("recorded_at_nanos")?;
        let timestamp = join_timestamp(micros, nanos)
            .ok_or_else(|| stored.corrupt("recorded_at_nanos", &nanos))?;
        Ok((event_id, timestamp))
    })
}

/// An [`EventStore`] in a PostgreSQL database, shared by as many processes as you like.
///
/// Cloning is cheap; clones share the pool and the
/// [`appended_signal`](EventStore::appended_signal). See the [module](self) for the
/// schema, how appends stay all-or-nothing, and the high-water mark that keeps `read_all`
/// from passing over an event that commits late.
///
/// Errors: a failed expectation (or a unique violation on the stream's version) is
/// [`StoreError::Conflict`] with the expected and actual versions; a value PostgreSQL
/// cannot hold (a NUL character) is [`StoreError::Serialize`]; an unreadable row is
/// [`StoreError::Corrupt`]; everything else the database or the connection reports
/// (refused, lost, pool closed or exhausted) is [`StoreError::Unavailable`], and appended
/// nothing (unless the connection was lost during the commit itself, which no client can
/// tell apart).
///
/// Spans: the contract's CLIENT spans with `db.system.name` = `postgresql`,
/// `db.collection.name` = `events`, `db.operation.name` = `append`, `load` or `read_all`,
/// `server.address` and `server.port`; `db.query.text` only after
/// [`record_query_text(true)`](Self::record_query_text).
///
/// ```no_run
/// use eventsource_runtime::store::postgres::sqlx::PgPool;
/// use eventsource_runtime::store::{EventStore, PostgresEventStore};
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
    pool: PgPool,
    sql: Arc<Statements>,
    telemetry: Arc<StoreTelemetry>,
    record_query_text: bool,
    signal: Arc<listen::Signal>,
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
    /// any option sqlx's `PgConnectOptions` reads) with a pool of [`POOL_SIZE`] connections
    /// that waits up to [`ACQUIRE_TIMEOUT`] for one. Call [`migrate`](Self::migrate) before
    /// the first use.
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
        let mut telemetry = StoreTelemetry::new(SYSTEM);
        telemetry.collection = Some(EVENTS_TABLE);
        telemetry.server = Some(server_of(&pool.connect_options()));
        let sql = Statements::new(DEFAULT_SCHEMA);
        Self {
            signal: Arc::new(listen::Signal::new(sql.channel.clone())),
            sql: Arc::new(sql),
            pool,
            telemetry: Arc::new(telemetry),
            record_query_text: false,
        }
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
        self.signal = Arc::new(listen::Signal::new(sql.channel.clone()));
        self.sql = Arc::new(sql);
        Ok(self)
    }

    /// Creates the schema, the tables of all three PostgreSQL stores and the functions
    /// (see [`SCHEMA`]) where missing, in one transaction. Idempotent, and safe to run
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
        self.signal.advance(u64::try_from(newest).unwrap_or(0));
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
    /// default). Only the statement with its `$N` placeholders is recorded, never the bound
    /// values.
    #[must_use]
    pub fn record_query_text(mut self, record: bool) -> Self {
        self.record_query_text = record;
        self
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

    /// Closes the pool (of every clone) and waits for its connections to close. Every
    /// operation fails with [`StoreError::Unavailable`] afterwards, and the
    /// notification listener stops.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Appends as [`EventStore::append`] does, but as part of the caller's transaction (or
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
    /// use eventsource_runtime::store::postgres::sqlx;
    /// use eventsource_runtime::store::{ExpectedVersion, PostgresEventStore};
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
    /// # Errors
    /// As [`EventStore::append`]. After an error the transaction is aborted (PostgreSQL
    /// refuses further statements until it is rolled back).
    pub async fn append_in_transaction(
        &self,
        connection: &mut PgConnection,
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
                self.note_query(&self.sql.append);
                self.append_now(Some(connection), stream, expected, events)
                    .await
            },
        )
        .await
    }

    /// Puts `sql` on the current span when the user opted in and that span is one of this
    /// store's (not a caller's, as when the store's spans are off).
    fn note_query(&self, sql: &str) {
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
                span.set_attribute(DB_QUERY_TEXT, sql.to_owned());
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = sql;
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

    async fn append_now(
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
                Ok((actual, true, _)) => return Err(conflict(u64::try_from(actual).unwrap_or(0))),
                Ok((actual, false, positions)) => break (actual, positions.unwrap_or_default()),
                // A writer that went around `eventsource_append` took the version (or the
                // caller's transaction reads an old snapshot): a conflict, unless no
                // version was expected and the append can simply be tried again.
                Err(e) if is_version_taken(&e) => {
                    if expected == ExpectedVersion::Any && connection.is_none() && retries < 10 {
                        retries += 1;
                        continue;
                    }
                    return Err(conflict(self.stream_version(stream).await?));
                }
                Err(e) => return Err(unavailable(e)),
            }
        };
        let actual = u64::try_from(actual).unwrap_or(0);
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
                position: u64::try_from(position).unwrap_or(0),
                event_type: event.event_type.into_owned(),
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

#[async_trait]
impl EventStore for PostgresEventStore {
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
                self.note_query(&self.sql.append);
                self.append_now(None, stream, expected, events).await
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
            self.note_query(&self.sql.load);
            let rows = sqlx::query(&self.sql.load)
                .bind(stream.aggregate_type())
                .bind(stream.aggregate_id())
                .bind(to_i64(from_version))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        instrument::read_all(&self.telemetry, from_position, limit, "read_all", async {
            self.note_query(&self.sql.read_all);
            let rows = sqlx::query(&self.sql.read_all)
                .bind(to_i64(from_position))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: i64 = sqlx::query_scalar(&self.sql.version)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    fn system_name(&self) -> &'static str {
        SYSTEM
    }

    fn appended_signal(&self) -> Option<AppendSignal> {
        Some(self.signal.subscribe(&self.pool))
    }
}
