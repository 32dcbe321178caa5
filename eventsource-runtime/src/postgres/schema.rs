//! The schema the PostgreSQL stores share ([`SCHEMA`]) and its idempotent migration, in a
//! PostgreSQL schema of the user's choice; the advisory-lock keys.

use sqlx::Executor as _;
use sqlx::postgres::PgPool;

use super::unavailable;
use crate::sql::schema::pending;
use crate::store::StoreError;

/// The schema of the PostgreSQL stores (tables `events`, `snapshots`, `checkpoints` and
/// the functions appends and reads go through), version 1, as applied by `migrate()`, with
/// `__schema__` standing for the quoted schema name.
pub const SCHEMA: &str = include_str!("schema/full.sql");

/// Version 2 of the schema: the `parked_events` table, applied by `migrate()` after
/// [`SCHEMA`].
pub const SCHEMA_V2: &str = include_str!("schema/v2.sql");

/// Version 3 of the schema: the table `processed_messages` of
/// [`PostgresProcessedMessages`](super::PostgresProcessedMessages), applied by
/// `migrate()` after [`SCHEMA_V2`].
pub const SCHEMA_V3: &str = include_str!("schema/v3.sql");

/// Version 4 of the schema: `eventsource_append` reads the stream's version from the newest
/// index entry (version 1's `max(version)` could read the whole stream under a plan made
/// with stale statistics), applied by `migrate()` after [`SCHEMA_V3`].
pub const SCHEMA_V4: &str = include_str!("schema/v4.sql");

/// Version 5 of the schema: `eventsource_append` takes a batch's positions from the
/// sequence as one range instead of one value per row read back through `RETURNING`,
/// applied by `migrate()` after [`SCHEMA_V4`].
pub const SCHEMA_V5: &str = include_str!("schema/v5.sql");

/// Version 6 of the schema: a trigger refuses `UPDATE`, `DELETE` and `TRUNCATE` of stored
/// events to every role but the events table's owner (history nobody rewrites), applied by
/// `migrate()` after [`SCHEMA_V5`].
pub const SCHEMA_V6: &str = include_str!("schema/v6.sql");

/// Version 7 of the schema: the column `snapshots.schema_version` (the aggregate's
/// `SNAPSHOT_VERSION` a snapshot was taken at; 1 for the snapshots stored before), applied
/// by `migrate()` after [`SCHEMA_V6`].
pub const SCHEMA_V7: &str = include_str!("schema/v7.sql");

/// Version 8 of the schema: the index of the events by their metadata's `correlation_id`,
/// for `events_by_correlation`, applied by `migrate()` after [`SCHEMA_V7`].
pub const SCHEMA_V8: &str = include_str!("schema/v8.sql");

/// Version 9 of the schema: projections split into segments (the function
/// `eventsource_segment`, the tables `projection_segments` and `projection_workers`),
/// applied by `migrate()` after [`SCHEMA_V8`].
pub const SCHEMA_V9: &str = include_str!("schema/v9.sql");

/// Version 10 of the schema: each segment claim records its owner's claim timeout
/// (`projection_segments.claim_timeout`), by which it expires, applied by `migrate()` after
/// [`SCHEMA_V9`].
pub const SCHEMA_V10: &str = include_str!("schema/v10.sql");

/// Version 11 of the schema: the column `parked_events.retry_requested_at` (an operator's
/// request that the running runner retry the parked event), applied by `migrate()` after
/// [`SCHEMA_V10`].
pub const SCHEMA_V11: &str = include_str!("schema/v11.sql");

/// Version 12 of the schema: the columns `checkpoints.stopped_at` and `stop_error` (why a
/// projection's runner stopped on an error, until a runner takes it again), applied by
/// `migrate()` after [`SCHEMA_V11`].
pub const SCHEMA_V12: &str = include_str!("schema/v12.sql");

/// The privileges the runtime role needs on a schema the owner role has migrated, with
/// `__schema__` standing for the quoted schema name and `__role__` for the quoted role:
/// `USAGE` on the schema, `SELECT, INSERT` on `events` (no `UPDATE`, no `DELETE`), `USAGE,
/// UPDATE` on its position sequence, what the other tables need, `EXECUTE` on the
/// functions. See the PostgreSQL guide (`docs/postgres.md`).
pub const RUNTIME_GRANTS: &str = include_str!("schema/grants.sql");

/// The schema's versions, in order; `migrate()` applies those not yet recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA),
    (2, SCHEMA_V2),   // parked events
    (3, SCHEMA_V3),   // idempotent handlers' processed messages
    (4, SCHEMA_V4),   // appends read the stream's version from its newest index entry
    (5, SCHEMA_V5),   // appends take their positions as one range
    (6, SCHEMA_V6),   // stored events are never rewritten
    (7, SCHEMA_V7),   // snapshots' schema version
    (8, SCHEMA_V8),   // events by correlation id
    (9, SCHEMA_V9),   // projections split into segments
    (10, SCHEMA_V10), // each segment claim expires by its owner's timeout
    (11, SCHEMA_V11), // retry requests of parked events
    (12, SCHEMA_V12), // why a runner stopped
];

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

/// `migrate()` met a permission it lacks: the role it connects as may not read which
/// versions are applied, or may not apply those missing (`permission denied for schema
/// public` and the like, as the driver's error, the source). Migrate as the owner role; the
/// runtime role's `migrate()` succeeds without DDL once nothing is left to do.
#[derive(Debug)]
#[non_exhaustive]
pub struct MigrationRefused {
    /// The PostgreSQL schema.
    pub schema: String,
    /// The role `migrate()` connected as.
    pub role: String,
    /// The versions left to apply (empty when they could not be read).
    pub pending: Vec<i64>,
    /// What the server said.
    pub source: sqlx::Error,
}

impl std::fmt::Display for MigrationRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { schema, role, .. } = self;
        if self.pending.is_empty() {
            write!(
                f,
                "role {role} cannot read the schema versions of `{schema}` (grant it the \
                 runtime role's privileges)"
            )
        } else {
            let pending: Vec<String> = self.pending.iter().map(i64::to_string).collect();
            write!(
                f,
                "role {role} cannot migrate `{schema}` (versions {} to apply): run migrate() \
                 as the owner role",
                pending.join(", ")
            )
        }
    }
}

impl std::error::Error for MigrationRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The versions recorded in `schema` (none when it or its record does not exist). Reads
/// only: what the runtime role may do.
async fn applied_versions<'c, E>(executor: E, schema: &str) -> Result<Vec<i64>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c> + Copy,
{
    let recorded: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(qualify("__schema__.eventsource_schema_migrations", schema))
        .fetch_one(executor)
        .await?;
    if recorded.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(&qualify(
        "SELECT version FROM __schema__.eventsource_schema_migrations",
        schema,
    ))
    .fetch_all(executor)
    .await
}

/// The versions of the schema not among `applied`.
fn missing(applied: &[i64]) -> Vec<i64> {
    pending(MIGRATIONS, applied)
        .map(|(version, _)| version)
        .collect()
}

/// Applies the schema's missing versions in one transaction. Concurrent migrations of one
/// database take turns. With nothing to do it only reads which versions are applied: no
/// lock, no DDL, so the runtime role may call it.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let refused = |source: sqlx::Error, pending: Vec<i64>| -> StoreError {
        let denied = source
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "42501");
        if denied {
            StoreError::Unavailable(Box::new(MigrationRefused {
                schema: schema.to_owned(),
                role: pool.connect_options().get_username().to_owned(),
                pending,
                source,
            }))
        } else {
            unavailable(source)
        }
    };
    let pending = match applied_versions(pool, schema).await {
        Ok(applied) => missing(&applied),
        Err(error) => return Err(refused(error, Vec::new())),
    };
    if pending.is_empty() {
        return Ok(());
    }
    apply(pool, schema)
        .await
        .map_err(|error| refused(error, pending))
}

/// Applies what is missing, under the migration lock.
async fn apply(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A migration with nothing to do is silent: no `relation ... already exists, skipping`
    // notice (sqlx logs each at INFO) from every process after the first. For this
    // transaction only; warnings and errors still come through.
    (&mut *tx)
        .execute("SET LOCAL client_min_messages = warning")
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&["eventsource.migrate"]))
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        (&mut *tx)
            .execute(qualify("CREATE SCHEMA __schema__", schema).as_str())
            .await?;
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
        .await?;
    let applied: Vec<i64> = sqlx::query_scalar(&qualify(
        "SELECT version FROM __schema__.eventsource_schema_migrations",
        schema,
    ))
    .fetch_all(&mut *tx)
    .await?;
    for (version, sql) in pending(MIGRATIONS, &applied) {
        // No parameters: the simple query protocol, which runs several statements.
        (&mut *tx).execute(qualify(sql, schema).as_str()).await?;
        sqlx::query(&qualify(
            "INSERT INTO __schema__.eventsource_schema_migrations (version) VALUES ($1)",
            schema,
        ))
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
