//! The PostgreSQL stores against a real server: the conformance suites of the event,
//! snapshot and checkpoint stores (leases across pools, parked events) and processed
//! messages; migrations, the high-water mark (events that commit late are never passed
//! over), concurrency stress, typed conflicts, damaged rows, faults, notifications, spans,
//! and leases whose session ends.
//!
//! The server comes from `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Without it each test prints `skipped: DATABASE_URL not set` and passes, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1` (CI sets it): then each one fails. Every store lives in
//! a fresh schema of its own, dropped when the test succeeds.

use eventsource_test_support::servers;

use eventsource_runtime::testing::conformance;
use servers::Server;

use conformance::checkpoints::DroppedLease;
use conformance::eventually;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::{
    InvalidSchemaName, PING_AFTER_IDLE, PostgresCheckpointStore, PostgresEventStore,
    PostgresSnapshotStore,
};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ProjectionLease};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::snapshot::SnapshotStore;
use eventsource_runtime::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use eventsource_runtime::sqlx::{self, PgPool};
use eventsource_runtime::store::{
    BatchEnd, EventStore, ExpectedVersion, StoreError, VersionConflict, WithStoreTelemetry,
};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::attributes::{
    SPAN_SNAPSHOT_STORE_GET, SPAN_SNAPSHOT_STORE_SAVE, SPAN_STORE_APPEND, SPAN_STORE_LOAD,
    SPAN_STORE_READ_ALL,
};
use eventsource_runtime::testing::{attribute, capture, capture_metrics, kind};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use serde_json::json;
use tokio::sync::oneshot;

// ---- helpers -------------------------------------------------------------------------------

/// The Postgres server, or `None` (with a visible `skipped:` line).
fn database_url(test: &str) -> Option<String> {
    Server::Postgres.address(test)
}

/// One test's database access: unique schemas and an application name of its own (so a
/// fault test terminates only its own connections), schemas dropped on success.
struct TestDb {
    url: String,
    /// `application_name` of this test's pools.
    app: String,
    admin: PgPool,
    schemas: Mutex<Vec<String>>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    async fn open(test: &str) -> Option<Self> {
        let url = database_url(test)?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to DATABASE_URL: {e}"));
        Some(Self {
            url,
            app: unique("es_test"),
            admin,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// A new schema name, dropped at the end.
    fn schema(&self) -> String {
        let name = unique("es_t");
        self.schemas.lock().unwrap().push(name.clone());
        name
    }

    /// A new pool of `size` connections, named after the test.
    async fn pool(&self, size: u32) -> PgPool {
        let options: PgConnectOptions = self.url.parse().unwrap();
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name(&self.app))
            .await
            .unwrap()
    }

    /// A new pool of `size` connections whose application name is this test's with
    /// `suffix` (so its backends can be told apart; `terminate_backends` spares them).
    async fn pool_named(&self, size: u32, suffix: &str) -> PgPool {
        let options: PgConnectOptions = self.url.parse().unwrap();
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name(&format!("{}_{suffix}", self.app)))
            .await
            .unwrap()
    }

    /// The backend holding a projection lease (a session-level advisory lock on one
    /// bigint key) for the pools named with `suffix`, if any.
    async fn lease_backend(&self, suffix: &str) -> Option<i32> {
        sqlx::query_scalar(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
               AND a.application_name = $1",
        )
        .bind(format!("{}_{suffix}", self.app))
        .fetch_optional(&self.admin)
        .await
        .unwrap()
    }

    /// Terminates one backend, as an administrator (or a failover) would.
    async fn terminate(&self, pid: i32) {
        let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&self.admin)
            .await
            .unwrap();
        assert!(done, "backend {pid} terminated");
    }

    /// A migrated event store on `pool`, in a new schema.
    async fn store_on(&self, pool: &PgPool) -> PostgresEventStore {
        let store = PostgresEventStore::from_pool(pool.clone())
            .with_schema(&self.schema())
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Terminates every backend of this test's pools; returns how many.
    async fn terminate_backends(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.app)
        .fetch_one(&self.admin)
        .await
        .unwrap()
    }

    async fn cleanup(self) {
        eventsource_test_support::postgres::drop_schemas(&self.admin, &self.schemas).await;
        self.admin.close().await;
    }
}

/// `let Some(db) = db!("name") else { return };`
macro_rules! db {
    ($test:literal) => {
        TestDb::open($test).await
    };
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, json!({ "n": n }))
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

fn positions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

// One module a part of the suite (they use the helpers above).
mod checkpoints;
mod conflicts;
mod conforms;
mod faults;
mod first_catch_up;
mod high_water_mark;
mod lost_leases;
mod notifications;
mod processed;
mod snapshots;
mod spans;
