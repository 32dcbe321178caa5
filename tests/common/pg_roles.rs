//! Least privilege on a real server (any: the local one, or the TLS-only cluster): an owner
//! role that migrates schemas of its own, a runtime role granted
//! `postgres::RUNTIME_GRANTS` only, and a role granted `UPDATE` and `DELETE` on events by
//! mistake; what the runtime does, done as the runtime role; history refused to rewrite.
//! Roles and schemas are made per test and dropped at the end.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::{
    BusMessage, BusTelemetry, Dispatcher, EventHandler, HandlerError, Idempotent, InMemoryEventBus,
    ProcessedMessages, Subscribe,
};
use eventsource_runtime::event::{EventEnvelope, Metadata, NewEvent, StreamId};
use eventsource_runtime::postgres::{
    MigrationRefused, PostgresEventStore, RUNTIME_GRANTS, TransactionalHandler,
    TransactionalIdempotent,
};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ParkedEvent, RunnerStop};
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::relay::Relay;
use eventsource_runtime::snapshot::{Snapshot, SnapshotStore};
use eventsource_runtime::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use eventsource_runtime::sqlx::types::chrono::Utc;
use eventsource_runtime::sqlx::{self, PgConnection, PgPool};
use eventsource_runtime::store::{EventStore, ExpectedVersion, StoreError};
use serde_json::json;

/// One test's roles and schemas on one server.
pub struct Roles {
    /// The server's connection options (TLS settings included), as a superuser.
    base: PgConnectOptions,
    admin: PgPool,
    owner_pool: PgPool,
    password: String,
    /// The role that migrates and owns the schemas.
    pub owner: String,
    /// The role the runtime connects as: `RUNTIME_GRANTS` only.
    pub runtime: String,
    /// A runtime role that was granted `UPDATE` and `DELETE` on events by mistake.
    pub mistaken: String,
    schemas: Mutex<Vec<String>>,
}

impl Roles {
    /// New roles on the server `base` reaches (as a superuser, or a role with CREATEROLE
    /// and CREATE on the database).
    pub async fn create(base: PgConnectOptions) -> Self {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(base.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot connect as the administrator: {e}"));
        let id = format!("{}_{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let password = format!("pw-{id}-{}", uuid::Uuid::now_v7().simple());
        let (owner, runtime, mistaken) = (
            format!("es_owner_{id}"),
            format!("es_runtime_{id}"),
            format!("es_mistaken_{id}"),
        );
        for role in [&owner, &runtime, &mistaken] {
            sqlx::raw_sql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
                .execute(&admin)
                .await
                .unwrap();
        }
        let owner_pool = pool_of(base.clone().username(&owner).password(&password), 4).await;
        Self {
            base,
            admin,
            owner_pool,
            password,
            owner,
            runtime,
            mistaken,
            schemas: Mutex::new(Vec::new()),
        }
    }

    /// The connection options of `role`, on the same server with the same TLS settings.
    pub fn options(&self, role: &str) -> PgConnectOptions {
        self.base.clone().username(role).password(&self.password)
    }

    /// A pool of `size` connections as `role`.
    pub async fn pool(&self, role: &str, size: u32) -> PgPool {
        pool_of(self.options(role), size).await
    }

    /// The administrator's pool.
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// A new schema owned by the owner role (an administrator makes it, as a DBA would),
    /// migrated by the owner, granted to the runtime role (and to the mistaken one, with
    /// `UPDATE` and `DELETE` on events besides).
    pub async fn schema(&self) -> String {
        let schema = format!(
            "es_lp_{}_{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        self.schemas.lock().unwrap().push(schema.clone());
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema} AUTHORIZATION {}",
            self.owner
        ))
        .execute(&self.admin)
        .await
        .unwrap();
        PostgresEventStore::from_pool(self.owner_pool.clone())
            .with_schema(&schema)
            .unwrap()
            .migrate()
            .await
            .unwrap();
        for role in [&self.runtime, &self.mistaken] {
            let grants = RUNTIME_GRANTS
                .replace("__schema__", &format!("\"{schema}\""))
                .replace("__role__", &format!("\"{role}\""));
            sqlx::raw_sql(&grants)
                .execute(&self.owner_pool)
                .await
                .unwrap();
        }
        sqlx::raw_sql(&format!(
            "GRANT UPDATE, DELETE, TRUNCATE ON {schema}.events TO {}",
            self.mistaken
        ))
        .execute(&self.owner_pool)
        .await
        .unwrap();
        schema
    }

    /// An event store in a new schema, connected as the runtime role through `pool`.
    pub async fn runtime_store(&self, pool: &PgPool) -> PostgresEventStore {
        PostgresEventStore::from_pool(pool.clone())
            .with_schema(&self.schema().await)
            .unwrap()
    }

    /// Drops the schemas and the roles.
    pub async fn cleanup(self) {
        self.owner_pool.close().await;
        crate::postgres::drop_schemas(&self.admin, &self.schemas).await;
        for role in [&self.owner, &self.runtime, &self.mistaken] {
            sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
                .execute(&self.admin)
                .await
                .unwrap();
        }
        self.admin.close().await;
    }
}

async fn pool_of(options: PgConnectOptions, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect: {e}"))
}

fn counted(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, json!({ "n": n }))
}

// ---- migrate() ---------------------------------------------------------------------------------

/// The runtime role's `migrate()` succeeds with nothing to do (no DDL), from every store;
/// on a schema that needs versions it fails with a typed error that names the role and
/// says what to do, in one line.
pub async fn the_runtime_role_migrates_nothing_and_is_told_why_it_cannot(roles: &Roles) {
    let pool = roles.pool(&roles.runtime, 2).await;
    let store = roles.runtime_store(&pool).await;
    store.migrate().await.unwrap();
    store.snapshot_store().migrate().await.unwrap();
    store.checkpoint_store().migrate().await.unwrap();
    store.processed_messages().migrate().await.unwrap();

    let fresh = PostgresEventStore::from_pool(pool.clone())
        .with_schema(&format!("{}_new", store.schema()))
        .unwrap();
    let error = fresh.migrate().await.unwrap_err();
    let StoreError::Unavailable(source) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    let refused = source
        .downcast_ref::<MigrationRefused>()
        .unwrap_or_else(|| panic!("a MigrationRefused, got {source:?}"));
    assert_eq!(refused.role, roles.runtime);
    assert_eq!(refused.pending, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let line = crate::errors::chain(&error);
    assert!(
        line.contains(&format!("role {} cannot migrate", roles.runtime))
            && line.contains("run migrate() as the owner role")
            && line.contains("permission denied"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    pool.close().await;
}

// ---- the stores, the runner, the relay, the idempotent handlers ---------------------------------

/// A projection recording the positions it handled.
struct Positions {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Positions {
    fn name(&self) -> &str {
        "positions"
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// A handler counting its runs.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicU64>);

#[eventsource_runtime::async_trait]
impl EventHandler for Runs {
    fn name(&self) -> &str {
        "send-confirmation"
    }

    async fn handle(&self, _event: &EventEnvelope) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A transactional handler inserting a row per event into `table`.
#[derive(Clone)]
struct WritesRow {
    table: String,
}

#[eventsource_runtime::async_trait]
impl TransactionalHandler for WritesRow {
    fn name(&self) -> &str {
        "order-rows"
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        transaction: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        sqlx::query(&format!(
            "INSERT INTO {} (message_id) VALUES ($1)",
            self.table
        ))
        .bind(event.event_id)
        .execute(transaction)
        .await
        .map_err(HandlerError::new)?;
        Ok(())
    }
}

/// Snapshots, checkpoints with their lease and parked events, a projection runner, the
/// relay, and idempotent handlers (processed messages and `TransactionalIdempotent`), all
/// as the runtime role.
pub async fn the_runtime_role_runs_everything_the_runtime_does(roles: &Roles) {
    let pool = roles.pool(&roles.runtime, 6).await;
    let store = roles.runtime_store(&pool).await;
    store.migrate().await.unwrap();
    let stream = StreamId::new("Order", "o-1");
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            (0..3).map(counted).collect(),
        )
        .await
        .unwrap();
    store
        .append(
            &StreamId::new("Order", "o-2"),
            ExpectedVersion::Any,
            vec![counted(3)],
        )
        .await
        .unwrap();

    // Snapshots: save (insert, then update), get, delete.
    let snapshots = store.snapshot_store();
    for version in [1, 3] {
        snapshots
            .save(Snapshot {
                stream: stream.clone(),
                version,
                state: json!({ "v": version }).into(),
                // Version 7's column, written by the runtime role (its grant is table-wide).
                schema_version: u32::try_from(version).unwrap(),
                taken_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    assert_eq!(snapshots.get(&stream).await.unwrap().unwrap().version, 3);
    let stored = snapshots.get(&stream).await.unwrap().unwrap();
    assert_eq!(
        stored.schema_version, 3,
        "the runtime role writes schema_version"
    );
    snapshots.delete(&stream).await.unwrap();
    assert!(snapshots.get(&stream).await.unwrap().is_none());

    // Checkpoints, the lease (an advisory lock), a leased save, parked events.
    let checkpoints = store.checkpoint_store();
    checkpoints.save("manual", 2).await.unwrap();
    checkpoints.save("manual", 3).await.unwrap();
    assert_eq!(checkpoints.load("manual").await.unwrap(), 3);
    let lease = checkpoints
        .try_acquire("manual")
        .await
        .unwrap()
        .expect("free");
    assert!(
        checkpoints.try_acquire("manual").await.unwrap().is_none(),
        "held"
    );
    checkpoints
        .save_leased(lease.as_ref(), "manual", 4)
        .await
        .unwrap();
    lease.release().await;
    checkpoints
        .park("manual", &ParkedEvent::new(2, "unreadable"))
        .await
        .unwrap();
    checkpoints
        .park("manual", &ParkedEvent::new(2, "again"))
        .await
        .unwrap();
    assert_eq!(
        checkpoints.parked("manual").await.unwrap()[0].error,
        "again"
    );
    assert!(checkpoints.unpark("manual", 2).await.unwrap());
    // Why a runner stopped: recorded, listed, cleared.
    let stop = RunnerStop::new("handler failed");
    checkpoints.record_stop("manual", &stop).await.unwrap();
    let listed = checkpoints.checkpoints().await.unwrap();
    let manual = listed.iter().find(|r| r.projection == "manual").unwrap();
    assert_eq!(
        manual.stopped.as_ref().map(|s| s.error.as_str()),
        Some("handler failed")
    );
    checkpoints.clear_stop("manual").await.unwrap();

    // A projection runner (it takes its lease and saves its checkpoint leased).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let runner = ProjectionRunner::new(
        Arc::clone(&shared),
        Arc::new(checkpoints.clone()),
        Positions {
            seen: Arc::clone(&seen),
        },
    );
    assert_eq!(runner.run_until_caught_up().await.unwrap(), 4);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4]);
    assert_eq!(runner.checkpoint().await.unwrap(), 4);

    // The relay onto a bus whose handler is idempotent over the processed-messages table.
    let processed = store.processed_messages();
    let runs = Runs::default();
    let bus = InMemoryEventBus::new();
    bus.subscribe(Idempotent::new(runs.clone(), processed.clone()));
    let relay = Relay::new(
        Arc::clone(&shared),
        Arc::new(checkpoints.clone()),
        Arc::new(bus),
    );
    assert_eq!(relay.run_until_caught_up().await.unwrap(), 4);
    assert_eq!(relay.checkpoint().await.unwrap(), 4);
    assert_eq!(runs.0.load(Ordering::SeqCst), 4);

    // A message delivered twice runs its handler once.
    let events = store.load(&stream, 1).await.unwrap();
    let message = BusMessage::new("orders", events[0].clone());
    let dispatcher = Dispatcher::new("orders", BusTelemetry::new("test"));
    dispatcher.subscribe(Idempotent::new(runs.clone(), processed.clone()));
    assert!(dispatcher.deliver(&message).await.is_empty());
    assert!(dispatcher.deliver(&message).await.is_empty());
    assert_eq!(
        runs.0.load(Ordering::SeqCst),
        4,
        "recorded by the relay's delivery"
    );
    assert!(
        processed
            .is_recorded("send-confirmation", events[0].event_id)
            .await
            .unwrap()
    );

    // A transactional handler writing to a table of the application's (the owner's, with
    // INSERT granted to the runtime role).
    let table = format!("\"{}\".handled", store.schema());
    sqlx::raw_sql(&format!(
        "CREATE TABLE {table} (message_id uuid NOT NULL); \
         GRANT SELECT, INSERT ON {table} TO {}",
        roles.runtime
    ))
    .execute(&roles.pool(&roles.owner, 1).await)
    .await
    .unwrap();
    let transactional = Dispatcher::new("orders", BusTelemetry::new("test"));
    transactional.subscribe(TransactionalIdempotent::new(
        WritesRow {
            table: table.clone(),
        },
        processed.clone(),
    ));
    assert!(transactional.deliver(&message).await.is_empty());
    assert!(transactional.deliver(&message).await.is_empty());
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // Version 8's index: the runtime role lists one correlation id's events (its SELECT on
    // `events` is enough).
    let correlated =
        counted(4).with_metadata(Metadata::new().with(Metadata::CORRELATION_ID, "c-roles"));
    store
        .append(
            &StreamId::new("Order", "o-3"),
            ExpectedVersion::Any,
            vec![correlated],
        )
        .await
        .unwrap();
    let listed = store.events_by_correlation("c-roles").await.unwrap();
    assert_eq!(listed.len(), 1);
    pool.close().await;
}

// ---- history nobody rewrites ---------------------------------------------------------------------

/// `UPDATE`, `DELETE` and `TRUNCATE` of stored events: refused for the runtime role (not
/// granted) and for a role granted them by mistake (the trigger); the owner may.
pub async fn stored_events_are_never_rewritten(roles: &Roles) {
    let runtime = roles.pool(&roles.runtime, 2).await;
    let store = roles.runtime_store(&runtime).await;
    let schema = store.schema().to_owned();
    let stream = StreamId::new("Order", "o-1");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![counted(1)])
        .await
        .unwrap();
    let rewrites = [
        format!("UPDATE \"{schema}\".events SET payload = '{{\"n\": 2}}'"),
        format!("DELETE FROM \"{schema}\".events"),
        format!("TRUNCATE \"{schema}\".events"),
    ];

    for sql in &rewrites {
        let error = sqlx::raw_sql(sql).execute(&runtime).await.unwrap_err();
        let database = error.as_database_error().expect("a server error");
        assert_eq!(database.code().as_deref(), Some("42501"), "{sql}: {error}");
        assert!(
            database
                .message()
                .contains("permission denied for table events"),
            "{sql}: {error}"
        );
    }

    let mistaken = roles.pool(&roles.mistaken, 2).await;
    for (sql, operation) in rewrites.iter().zip(["UPDATE", "DELETE", "TRUNCATE"]) {
        let error = sqlx::raw_sql(sql).execute(&mistaken).await.unwrap_err();
        let database = error.as_database_error().expect("a server error");
        assert_eq!(database.code().as_deref(), Some("42501"), "{sql}: {error}");
        assert_eq!(
            database.message(),
            format!(
                "stored events are never rewritten: {operation} on {schema}.events refused \
                 for role {}",
                roles.mistaken
            )
        );
    }
    let events = store.load(&stream, 1).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload.to_value(), json!({ "n": 1 }), "unchanged");

    // The owner may (a repair the team decides on).
    let owner = roles.pool(&roles.owner, 1).await;
    sqlx::raw_sql(&rewrites[0]).execute(&owner).await.unwrap();
    assert_eq!(
        store.load(&stream, 1).await.unwrap()[0].payload.to_value(),
        json!({ "n": 2 })
    );
    for pool in [runtime, mistaken, owner] {
        pool.close().await;
    }
}

/// The store conformance suite, each check on a fresh schema, as the runtime role.
pub async fn the_runtime_role_passes_the_conformance_suite(roles: &Roles) {
    let pool = roles.pool(&roles.runtime, 10).await;
    let (roles_ref, pool_ref) = (roles, &pool);
    super::conformance::events::run_all(move || async move {
        Arc::new(roles_ref.runtime_store(pool_ref).await) as Arc<dyn EventStore>
    })
    .await;
    pool.close().await;
}
