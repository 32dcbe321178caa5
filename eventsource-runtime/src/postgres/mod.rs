//! PostgreSQL (feature `postgres`): everything this database does for the runtime. Events,
//! snapshots, projection checkpoints and their leases in one database that several
//! processes share, through [sqlx](https://docs.rs/sqlx) with runtime queries (re-exported
//! as `eventsource_runtime::sqlx`, to make pools and transactions with the same version):
//!
//! - [`PostgresEventStore`] (`events`), with the high-water mark and LISTEN/NOTIFY (`listen`),
//!   and the session that holds the mark back (`mark_holder`, the store's
//!   [`EventStore::mark_holder`](crate::store::EventStore::mark_holder));
//! - [`PostgresSnapshotStore`] (`snapshots`);
//! - [`PostgresCheckpointStore`] (`checkpoints`) and its [`PostgresLease`] (`lease`);
//! - the bound on a silent client every connection asks of the server (`liveness`);
//! - [`PostgresProcessedMessages`], the messages [idempotent handlers](crate::bus::Idempotent)
//!   handled (`processed`), and [`TransactionalIdempotent`], a handler writing in the
//!   transaction that records its message (`transactional`);
//! - the schema and its migration (`schema`), the statements run on it (`statements`), the
//!   rows' encoding and decoding (`rows`), and the two readers, each reading windows of
//!   rows from one query (`window`): the log's batches for a reader catching up
//!   (`log_reader`) and a long stream's pages (`stream_reader`).
//!
//! # Schema
//!
//! The stores share one schema ([`SCHEMA`], then [`SCHEMA_V2`] to [`SCHEMA_V12`]), which
//! `migrate()` on any of them applies as a whole, in one transaction (idempotent: run it at
//! every start, from any store and any number of processes at once). Its tables live in a
//! PostgreSQL schema of your choice (`public` unless you call `with_schema`, which also lets
//! tests isolate themselves):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `events` | `position bigint GENERATED ALWAYS AS IDENTITY`, `UNIQUE (stream_type, stream_id, version)` | event id (`uuid`), event type, schema version, `recorded_at timestamptz` (+ `recorded_at_nanos`, so timestamps round-trip to the nanosecond), `payload jsonb`, `metadata jsonb` |
//! | `snapshots` | `(stream_type, stream_id)` | the newest snapshot per stream (`state jsonb`), with its `schema_version` (version 7, [`SCHEMA_V7`]) |
//! | `checkpoints` | `projection` | each projection's checkpoint, and why its runner stopped, `stopped_at` and `stop_error` (version 12, [`SCHEMA_V12`]) |
//! | `parked_events` | `(projection, position)` | the events each projection parked, with the error (version 2, [`SCHEMA_V2`]), and when an operator asked to retry one, `retry_requested_at` (version 11, [`SCHEMA_V11`]) |
//! | `processed_messages` | `(handler, message_id uuid)` | the messages each idempotent handler handled, `handled_at` (version 3, [`SCHEMA_V3`]) |
//! | `projection_segments` | `(projection, segment)` | the segments of each split projection: owner, fencing `epoch`, `renewed_at` (version 9, [`SCHEMA_V9`]), the owner's `claim_timeout` (version 10, [`SCHEMA_V10`]) |
//! | `projection_workers` | `(projection, worker)` | the workers of each split projection, `seen_at` (version 9) |
//!
//! Applied versions are recorded in `eventsource_schema_migrations`. The schema also holds
//! three functions: `eventsource_append` (an append, in one statement),
//! `eventsource_read_all` and `eventsource_high_water_mark`, and (version 6, [`SCHEMA_V6`])
//! a trigger that refuses `UPDATE`, `DELETE` and `TRUNCATE` of stored events to every role
//! but the events table's owner. PostgreSQL 13 or later.
//!
//! # Roles and TLS
//!
//! Migrate as the owner role; run as a role granted [`RUNTIME_GRANTS`] only (no DDL, no
//! `UPDATE` or `DELETE` of events): its `migrate()` with nothing left to do only reads which
//! versions are applied, and with something to do fails with [`MigrationRefused`]. With the
//! `tls` feature (default) `connect` speaks TLS as libpq's `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey` say (in the URL, or `PGSSLMODE` and the other `PG*` variables); a
//! connection that fails is a [`DatabaseUnreachable`] naming the server and, for TLS and
//! authentication, the [`ConnectFailure`]. The PostgreSQL guide (`docs/postgres.md`) has
//! the `GRANT`s and what sqlx reads.
//!
//! # Appends
//!
//! An append is one statement, hence one transaction: all of the batch or none of it. It
//! takes a transaction-level advisory lock on its stream, so concurrent writers of one
//! stream take turns, reads the stream's version, and fails with the typed
//! [`VersionConflict`](crate::store::VersionConflict) (expected and actual) when it is not the expected one. A unique
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
//! - Each append allocates its positions, one consecutive range, under a short advisory
//!   lock (the sequencing lock, held only for the `INSERT`, released before the commit)
//!   and, in the same critical section, takes a shared transaction-level advisory lock
//!   whose key carries its first position: a registration that lasts until it commits or
//!   aborts.
//! - A reader takes the sequencing lock shared (so no append is between allocating and
//!   registering), reads the registrations from `pg_locks` and the sequence's last value,
//!   releases the lock, and then reads the events with a fresh snapshot.
//!
//! Every position below the mark belongs to a transaction that had finished when the mark
//! was computed, so the later snapshot sees it, unless it aborted (a gap that never
//! fills). What is below a mark stays final, so a store remembers the highest mark it
//! computed: a `read_all` entirely below it is a plain keyset `SELECT` (`position >= from AND
//! position < mark`), and a reader catching up (a full batch read through the function)
//! has the mark computed once more for the batches that follow. A reader catching up through
//! [`read_all_batches`](crate::store::EventStore::read_all_batches) (a projection runner)
//! streams its batches from one such `SELECT` below the mark instead of one query per batch
//! (16 batches a query, decoded as they arrive; never on a pool's last free connection), and
//! reads past the mark as `read_all` does. Only appends to the same `events` table delay a
//! reader, and only while they are in flight: unrelated transactions (long reports, other
//! schemas) do not.
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
//! with its last position. [`appended_signal`](crate::store::EventStore::appended_signal) starts a task
//! that `LISTEN`s on its own connection and feeds a watch channel; when the connection is
//! lost it reconnects with backoff (and wakes the followers, who may have missed
//! notifications meanwhile), and it stops when the pool is closed or the store dropped.
//!
//! ```no_run
//! use eventsource_runtime::event::{NewEvent, StreamId};
//! use eventsource_runtime::postgres::PostgresEventStore;
//! use eventsource_runtime::store::{EventStore, ExpectedVersion};
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

mod backend;
mod checkpoints;
mod connect;
mod events;
mod fenced;
mod lease;
mod listen;
mod liveness;
mod log_reader;
mod mark_holder;
mod processed;
mod resplit;
mod retire;
mod rows;
mod schema;
mod segments;
mod snapshots;
mod statements;
mod stream_reader;
mod transactional;
mod window;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::store::StoreTelemetry;

pub use checkpoints::PostgresCheckpointStore;
pub(crate) use connect::open_pool;
pub use connect::{ConnectFailure, DatabaseUnreachable};
pub use events::PostgresEventStore;
pub use fenced::{
    DEFAULT_FENCED_BATCH, DEFAULT_IDLE_TRANSACTION_TIMEOUT, Fenced, FencedProjection,
};
pub use lease::{DEFAULT_LEASE_TIMEOUT, PostgresLease};
pub use liveness::{DEFAULT_ANSWER_TIMEOUT, DEFAULT_PEER_TIMEOUT};
pub use processed::PostgresProcessedMessages;
#[cfg(feature = "fuzzing")]
pub(crate) use rows::decode_of as decode_row;
pub use schema::{
    InvalidSchemaName, MigrationRefused, RUNTIME_GRANTS, SCHEMA, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4,
    SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8, SCHEMA_V9, SCHEMA_V10, SCHEMA_V11, SCHEMA_V12,
};
pub use snapshots::PostgresSnapshotStore;
pub use transactional::{TransactionalHandler, TransactionalIdempotent};

/// `db.system.name` of the PostgreSQL stores.
pub const SYSTEM: &str = "postgresql";

/// `db.collection.name` of the event store: the events table.
pub const EVENTS_TABLE: &str = "events";

/// The schema the stores use unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// Connections of a pool opened by `connect`.
pub const POOL_SIZE: u32 = 10;

/// How long `connect`'s pool waits for a connection before an operation fails with
/// [`StoreError::Unavailable`](crate::store::StoreError::Unavailable).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection of `connect`'s pool may sit idle before it is pinged on its way
/// out of the pool (one round trip) to make sure the server has not dropped it.
///
/// A connection is checked when it goes back to the pool, so one used this recently was
/// alive a moment ago. Pinging every connection on every acquire (sqlx's default) costs an
/// append one more round trip: about 50 µs, a tenth of a one-event append, on a local
/// server. The window is HikariCP's (`aliveBypassWindowMs`).
///
/// The price: a connection the server drops within this window of its last use (an
/// administrator's `pg_terminate_backend`, a restart faster than the window) fails the
/// next operation on it with
/// [`StoreError::Unavailable`](crate::store::StoreError::Unavailable), having stored
/// nothing, where a ping would have replaced it. Pass your own pool to `from_pool` to choose otherwise.
pub const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// `connect` and `from_pool` of a store made by `on(pool, schema)` (`$what` names it in
/// the docs).
macro_rules! pool_store {
    ($store:ident, $what:literal) => {
        impl $store {
            /// Connects to the database at `url`, as
            /// [`PostgresEventStore::connect`](super::PostgresEventStore::connect) does.
            ///
            /// # Errors
            /// [`StoreError::Unavailable`] when the database cannot be reached.
            pub async fn connect(url: &str) -> Result<Self, StoreError> {
                Ok(Self::from_pool(super::open_pool(url).await?))
            }

            #[doc = concat!("A ", $what, " on an existing pool (e.g. the event store's), in the `public` schema.")]
            #[must_use]
            pub fn from_pool(pool: PgPool) -> Self {
                Self::on(pool, super::DEFAULT_SCHEMA)
            }
        }
    };
}
use pool_store;

pub(crate) use crate::sql::{to_i64, to_u64, unavailable};

/// The telemetry settings of a store on `pool` keeping its rows in `table` of `schema`.
pub(crate) fn store_telemetry(pool: &PgPool, table: &'static str, schema: &str) -> StoreTelemetry {
    let options = pool.connect_options();
    let mut telemetry = StoreTelemetry::new(SYSTEM);
    telemetry.collection = Some(table);
    telemetry.server = Some(server_of(&options));
    telemetry.namespace = Some(namespace_of(&options, schema));
    telemetry
}

/// `db.namespace`: `{database}.{schema}` (the database defaults to the user's name, as
/// PostgreSQL's does).
pub(crate) fn namespace_of(options: &PgConnectOptions, schema: &str) -> String {
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    format!("{database}.{schema}")
}

/// `server.address` and `server.port` of a pool's database.
pub(crate) fn server_of(options: &PgConnectOptions) -> (String, u16) {
    let address = options.get_socket().map_or_else(
        || options.get_host().to_owned(),
        |socket| socket.display().to_string(),
    );
    (address, options.get_port())
}
