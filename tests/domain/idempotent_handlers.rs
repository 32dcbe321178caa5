//! Idempotent handlers (`bus::Idempotent`, `postgres::TransactionalIdempotent`): a message
//! delivered twice runs the handler once, in memory, on SQLite and on PostgreSQL (records
//! read back from the tables); the duplicate shows on its handle span; a failing handler
//! runs again on redelivery; concurrent deliveries to two dispatchers sharing a store run
//! it once; on PostgreSQL a transactional handler's writes and the record commit together.
//!
//! PostgreSQL comes from `DATABASE_URL` (see `tests/common/postgres.rs`).

use crate::postgres;
use eventsource_test_support::envelopes;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventsource_runtime::bus::{
    BusMessage, BusTelemetry, Dispatcher, EventHandler, HandlerError, Idempotent, InMemoryEventBus,
    InMemoryProcessedMessages, ProcessedMessages, Subscribe,
};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::{
    PostgresProcessedMessages, TransactionalHandler, TransactionalIdempotent,
};
use eventsource_runtime::sqlite::{SqliteEventStore, SqliteProcessedMessages};
use eventsource_runtime::sqlx::types::Uuid;
use eventsource_runtime::sqlx::{self, PgConnection};
use eventsource_runtime::store::{EventStore, ExpectedVersion, InMemoryEventStore};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture};
use opentelemetry::Value;
use opentelemetry::trace::Status;
use postgres::TestDb;

const HANDLE: &str = attr::SPAN_BUS_HANDLE;

fn envelope(order: &str) -> EventEnvelope {
    EventEnvelope {
        payload: serde_json::json!({ "total": 12 }).into(),
        ..envelopes::order_placed(order)
    }
}

fn message(order: &str) -> BusMessage {
    BusMessage::new("orders", envelope(order))
}

fn dispatcher() -> Dispatcher {
    Dispatcher::new("orders", BusTelemetry::new("test"))
}

/// A handler counting its runs, failing its first `failures`, taking `delay` each time.
#[derive(Clone, Default)]
struct Counting {
    runs: Arc<AtomicUsize>,
    failures: usize,
    delay: Duration,
}

impl Counting {
    fn failing(failures: usize) -> Self {
        Self {
            failures,
            ..Self::default()
        }
    }

    fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[eventsource_runtime::async_trait]
impl EventHandler for Counting {
    fn name(&self) -> &str {
        "send-confirmation"
    }

    async fn handle(&self, _event: &EventEnvelope) -> Result<(), HandlerError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if run < self.failures {
            return Err(HandlerError::new("smtp server down"));
        }
        Ok(())
    }
}

/// The `eventsource.handler.duplicate` of each handle span, in the order they ended.
fn duplicates(spans: &CapturedSpans) -> Vec<Option<Value>> {
    spans
        .all(HANDLE)
        .into_iter()
        .map(|s| attribute(s, attr::HANDLER_DUPLICATE).cloned())
        .collect()
}

/// Delivers `message` twice through `store` and checks: one run, the second handle span
/// marked as a duplicate, the message recorded for the handler only.
async fn delivered_twice_runs_once(store: impl ProcessedMessages + Clone) {
    let capture = capture();
    let handler = Counting::default();
    let dispatcher = dispatcher();
    dispatcher.subscribe(Idempotent::new(handler.clone(), store.clone()));
    let message = message("o-1");

    assert!(
        store
            .claim("audit", message.message_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(dispatcher.deliver(&message).await.is_empty());
    assert!(
        dispatcher
            .redeliver(&message, 2, &["send-confirmation".into()])
            .await
            .is_empty()
    );
    assert!(
        dispatcher
            .replay(std::slice::from_ref(&message.event))
            .await
            .is_empty()
    );

    assert_eq!(handler.runs(), 1, "run on the first delivery only");
    let spans = capture.spans();
    assert_eq!(
        duplicates(&spans),
        [None, Some(Value::Bool(true)), Some(Value::Bool(true))],
        "{}",
        spans.tree()
    );
    for span in spans.all(HANDLE) {
        assert_eq!(span.status, Status::Unset, "a duplicate is a success");
    }
    assert!(
        store
            .is_recorded("send-confirmation", message.message_id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_recorded("audit", message.message_id)
            .await
            .unwrap(),
        "a claim dropped without record leaves nothing"
    );
}

/// A handler failing twice runs on each delivery until it succeeds; the message is
/// recorded only then, and the next delivery is a duplicate.
async fn a_failing_handler_runs_again_on_redelivery(store: impl ProcessedMessages + Clone) {
    let capture = capture();
    let handler = Counting::failing(2);
    let dispatcher = dispatcher();
    dispatcher.subscribe(Idempotent::new(handler.clone(), store.clone()));
    let message = message("o-2");
    let only = ["send-confirmation".to_owned()];

    assert_eq!(dispatcher.deliver(&message).await.len(), 1);
    assert!(
        !store
            .is_recorded("send-confirmation", message.message_id)
            .await
            .unwrap()
    );
    assert_eq!(dispatcher.redeliver(&message, 2, &only).await.len(), 1);
    assert!(dispatcher.redeliver(&message, 3, &only).await.is_empty());
    assert!(
        store
            .is_recorded("send-confirmation", message.message_id)
            .await
            .unwrap()
    );
    assert!(dispatcher.redeliver(&message, 4, &only).await.is_empty());

    assert_eq!(
        handler.runs(),
        3,
        "twice failed, once succeeded, then skipped"
    );
    let spans = capture.spans();
    let statuses: Vec<bool> = spans
        .all(HANDLE)
        .iter()
        .map(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(statuses, [true, true, false, false]);
    assert_eq!(
        duplicates(&spans),
        [None, None, None, Some(Value::Bool(true))]
    );
}

/// The same message delivered at once by two dispatchers sharing `store`: one run, one
/// duplicate.
async fn concurrent_deliveries_run_once(
    first: impl ProcessedMessages,
    second: impl ProcessedMessages,
) {
    let capture = capture();
    let handler = Counting::slow(Duration::from_millis(200));
    let (a, b) = (dispatcher(), dispatcher());
    a.subscribe(Idempotent::new(handler.clone(), first));
    b.subscribe(Idempotent::new(handler.clone(), second));
    let message = message("o-3");

    let (from_a, from_b) = tokio::join!(a.deliver(&message), b.deliver(&message));
    assert!(from_a.is_empty() && from_b.is_empty());
    assert_eq!(handler.runs(), 1);
    let mut marks = duplicates(&capture.spans());
    marks.sort_by_key(Option::is_some);
    assert_eq!(marks, [None, Some(Value::Bool(true))]);
}

// ---- in memory ------------------------------------------------------------------------------

#[tokio::test]
async fn in_memory_a_message_delivered_twice_runs_the_handler_once() {
    delivered_twice_runs_once(InMemoryProcessedMessages::new()).await;
}

#[tokio::test]
async fn in_memory_a_failing_handler_runs_again_on_redelivery() {
    a_failing_handler_runs_again_on_redelivery(InMemoryProcessedMessages::new()).await;
}

#[tokio::test]
async fn in_memory_concurrent_deliveries_run_the_handler_once() {
    let store = InMemoryProcessedMessages::new();
    concurrent_deliveries_run_once(store.clone(), store).await;
}

/// Through the in-memory bus: a command's events published twice (a relay resending after
/// a crash, say) reach the idempotent handler once, and the second publish's handle span
/// says so.
#[tokio::test]
async fn in_memory_bus_publishing_twice_handles_once() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let stored = store
        .append(
            &StreamId::new("Order", "o-4"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("OrderPlaced", 1, serde_json::json!({}))],
        )
        .await
        .unwrap()
        .events;
    let bus = InMemoryEventBus::new();
    let handler = Counting::default();
    bus.subscribe(Idempotent::new(
        handler.clone(),
        InMemoryProcessedMessages::new(),
    ));
    use eventsource_runtime::bus::EventBus as _;
    bus.publish(&stored).await.unwrap();
    bus.publish(&stored).await.unwrap();
    assert_eq!(handler.runs(), 1);
    assert_eq!(
        duplicates(&capture.spans()),
        [None, Some(Value::Bool(true))]
    );
}

// ---- SQLite ---------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_a_message_delivered_twice_runs_the_handler_once() {
    let events = SqliteEventStore::connect(":memory:").await.unwrap();
    events.migrate().await.unwrap();
    let store = events.processed_messages();
    delivered_twice_runs_once(store.clone()).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT handler, message_id FROM processed_messages")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "send-confirmation");
    assert!(Uuid::parse_str(&rows[0].1).is_ok());
}

#[tokio::test]
async fn sqlite_a_failing_handler_runs_again_on_redelivery() {
    let store = SqliteProcessedMessages::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    a_failing_handler_runs_again_on_redelivery(store).await;
}

/// Two stores (two pools) on one database file claim in turn, and the records outlive the
/// store that wrote them.
#[tokio::test]
async fn sqlite_concurrent_deliveries_run_once_and_records_survive_a_reopen() {
    let dir =
        std::env::temp_dir().join(format!("es-once-{}-{}", std::process::id(), Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("handled.db");
    let file = file.to_str().unwrap();
    let first = SqliteProcessedMessages::connect(file).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteProcessedMessages::connect(file).await.unwrap();
    concurrent_deliveries_run_once(first.clone(), second.clone()).await;
    first.pool().close().await;
    second.pool().close().await;

    let reopened = SqliteProcessedMessages::connect(file).await.unwrap();
    reopened.migrate().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_messages")
        .fetch_one(reopened.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM eventsource_schema_migrations ORDER BY version")
            .fetch_all(reopened.pool())
            .await
            .unwrap();
    assert!(versions.contains(&3), "{versions:?}");
    reopened.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- PostgreSQL -----------------------------------------------------------------------------

/// `let Some(db) = db!("name") else { return };`
macro_rules! db {
    ($test:literal) => {
        TestDb::open($test).await
    };
}

async fn pg_store(db: &TestDb, schema: &str) -> PostgresProcessedMessages {
    let pool = db.pool(4).await;
    db.store_in(&pool, schema).await.processed_messages()
}

#[tokio::test]
async fn postgres_a_message_delivered_twice_runs_the_handler_once() {
    let Some(db) = db!("postgres_a_message_delivered_twice_runs_the_handler_once") else {
        return;
    };
    let schema = db.schema();
    let store = pg_store(&db, &schema).await;
    delivered_twice_runs_once(store.clone()).await;
    let rows: Vec<(String, Uuid)> = sqlx::query_as(&format!(
        "SELECT handler, message_id FROM \"{schema}\".processed_messages"
    ))
    .fetch_all(db.admin())
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "send-confirmation");
    store.pool().close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_a_failing_handler_runs_again_on_redelivery() {
    let Some(db) = db!("postgres_a_failing_handler_runs_again_on_redelivery") else {
        return;
    };
    let store = pg_store(&db, &db.schema()).await;
    a_failing_handler_runs_again_on_redelivery(store.clone()).await;
    store.pool().close().await;
    db.cleanup().await;
}

/// Two dispatchers, each with a pool of its own (two processes, say), sharing the store's
/// table: the second claim waits for the first's transaction, then finds the record.
#[tokio::test]
async fn postgres_concurrent_deliveries_to_two_dispatchers_run_the_handler_once() {
    let Some(db) = db!("postgres_concurrent_deliveries_to_two_dispatchers_run_the_handler_once")
    else {
        return;
    };
    let schema = db.schema();
    let first = pg_store(&db, &schema).await;
    let second = PostgresProcessedMessages::from_pool(db.pool(4).await)
        .with_schema(&schema)
        .unwrap();
    concurrent_deliveries_run_once(first.clone(), second.clone()).await;
    first.pool().close().await;
    second.pool().close().await;
    db.cleanup().await;
}

/// A transactional handler: inserts a row per message into `handled`, in the transaction
/// that records the message. Its first `kills` runs write their row, then lose their
/// connection (the backend is terminated) before the commit; its next `failures` runs
/// write, then fail.
#[derive(Clone, Default)]
struct WritesRows {
    table: String,
    runs: Arc<AtomicUsize>,
    kills: usize,
    failures: usize,
    delay: Duration,
}

#[eventsource_runtime::async_trait]
impl TransactionalHandler for WritesRows {
    fn name(&self) -> &str {
        "order-rows"
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        transaction: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        sqlx::query(&format!(
            "INSERT INTO {} (message_id) VALUES ($1)",
            self.table
        ))
        .bind(event.event_id)
        .execute(&mut *transaction)
        .await
        .map_err(HandlerError::new)?;
        tokio::time::sleep(self.delay).await;
        if run < self.kills {
            // The process "crashes" after its write: the connection goes away.
            sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
                .execute(&mut *transaction)
                .await
                .map_err(HandlerError::new)?;
        } else if run < self.kills + self.failures {
            return Err(HandlerError::new("downstream refused"));
        }
        Ok(())
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.admin()).await.unwrap()
}

#[tokio::test]
async fn postgres_a_transactional_handler_commits_its_writes_with_the_record() {
    let Some(db) = db!("postgres_a_transactional_handler_commits_its_writes_with_the_record")
    else {
        return;
    };
    let capture = capture();
    let schema = db.schema();
    let store = pg_store(&db, &schema).await;
    let table = format!("\"{schema}\".handled");
    sqlx::raw_sql(&format!("CREATE TABLE {table} (message_id uuid NOT NULL)"))
        .execute(db.admin())
        .await
        .unwrap();
    let handler = WritesRows {
        table: table.clone(),
        kills: 1,
        failures: 1,
        ..WritesRows::default()
    };
    let dispatcher = dispatcher();
    dispatcher.subscribe(TransactionalIdempotent::new(handler.clone(), store.clone()));
    let message = message("o-5");
    let only = ["order-rows".to_owned()];
    let rows = format!("SELECT count(*) FROM {table}");
    let records = format!("SELECT count(*) FROM \"{schema}\".processed_messages");

    // Killed after writing: neither the row nor the record was committed.
    assert_eq!(dispatcher.deliver(&message).await.len(), 1);
    assert_eq!(
        (count(&db, &rows).await, count(&db, &records).await),
        (0, 0)
    );
    // Failed after writing: rolled back, both.
    assert_eq!(dispatcher.redeliver(&message, 2, &only).await.len(), 1);
    assert_eq!(
        (count(&db, &rows).await, count(&db, &records).await),
        (0, 0)
    );
    // Succeeds: both, together.
    assert!(dispatcher.redeliver(&message, 3, &only).await.is_empty());
    assert_eq!(
        (count(&db, &rows).await, count(&db, &records).await),
        (1, 1)
    );
    // Redelivered: acknowledged, not run.
    assert!(dispatcher.redeliver(&message, 4, &only).await.is_empty());
    assert_eq!(handler.runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        (count(&db, &rows).await, count(&db, &records).await),
        (1, 1)
    );
    assert!(
        store
            .is_recorded("order-rows", message.message_id)
            .await
            .unwrap()
    );
    assert_eq!(
        duplicates(&capture.spans()),
        [None, None, None, Some(Value::Bool(true))]
    );

    // Two dispatchers on pools of their own, one message at once: one run, one row.
    let second = PostgresProcessedMessages::from_pool(db.pool(4).await)
        .with_schema(&schema)
        .unwrap();
    let slow = WritesRows {
        table: table.clone(),
        delay: Duration::from_millis(200),
        ..WritesRows::default()
    };
    let other = self::dispatcher();
    other.subscribe(TransactionalIdempotent::new(slow.clone(), second.clone()));
    let mine = self::dispatcher();
    mine.subscribe(TransactionalIdempotent::new(slow.clone(), store.clone()));
    let next = self::message("o-6");
    let (a, b) = tokio::join!(mine.deliver(&next), other.deliver(&next));
    assert!(a.is_empty() && b.is_empty());
    assert_eq!(slow.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        (count(&db, &rows).await, count(&db, &records).await),
        (2, 2)
    );

    store.pool().close().await;
    second.pool().close().await;
    db.cleanup().await;
}
