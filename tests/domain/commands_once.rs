//! Commands with an id (`CommandService::execute_once`): a retry of the same id returns the
//! events the first execution stored instead of deciding and appending again (after a
//! commit whose outcome was lost, racing the first attempt, with snapshots), on the
//! in-memory store and on PostgreSQL (rows read back); a different id decides afresh.
//!
//! PostgreSQL comes from `DATABASE_URL` (see `tests/common/postgres.rs`).

use crate::domain;
use crate::postgres;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::{Order, OrderError, ShipOrder, sample_order};
use eventsource_runtime::event::{Metadata, NewEvent, StreamId};
use eventsource_runtime::prelude::*;
use eventsource_runtime::repository::RepositoryError;
use eventsource_runtime::snapshot::{InMemorySnapshotStore, SnapshotStore};
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{AppendResult, ExpectedVersion, StoreError};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture};
use eventsource_test_support::stores::{Intercept, Over};
use opentelemetry::Value;
use postgres::TestDb;
use serde::{Deserialize, Serialize};

fn ship(order_id: &str) -> ShipOrder {
    ShipOrder {
        order_id: order_id.into(),
        carrier: "dhl".into(),
    }
}

/// A store whose next append is stored but reported as failed, as when the connection
/// drops while the commit is under way (`lose_next_commit`); loads return `load_delay`
/// after reading.
#[derive(Clone)]
struct Uncertain<S> {
    inner: S,
    lose_next_commit: Arc<AtomicBool>,
    load_delay: Duration,
}

impl<S> Uncertain<S> {
    fn new(inner: S, load_delay: Duration) -> Over<Self> {
        Over(Self {
            inner,
            lose_next_commit: Arc::default(),
            load_delay,
        })
    }

    fn lose_next_commit(&self) {
        self.lose_next_commit.store(true, Ordering::SeqCst);
    }
}

#[eventsource_runtime::async_trait]
impl<S: EventStore> Intercept for Uncertain<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let appended = self.inner.append(stream, expected, events).await?;
        if self.lose_next_commit.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "connection reset while committing".into(),
            ));
        }
        Ok(appended)
    }

    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        let events = self.inner.load(stream, from).await;
        // Whoever reads at the same time reads the same.
        tokio::time::sleep(self.load_delay).await;
        events
    }
}

/// Every stored event, in order.
async fn all(store: &dyn EventStore) -> Vec<EventEnvelope> {
    store.read_all(0, 1000).await.unwrap().into_events()
}

// ---- in memory ------------------------------------------------------------------------------

/// Same id: the first events, no append, no rejection from deciding on the new state;
/// another id decides afresh (and is rejected, or appends).
async fn retries_return_the_first_outcome(store: impl EventStore + Clone) {
    let orders = CommandService::<Order>::new(store.clone());

    let placed = orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    assert!(!placed.duplicate);
    assert_eq!(placed.events.len(), 1);
    assert_eq!(placed.events[0].metadata.command_id(), Some("req-1"));

    // The client did not hear back: the same request again.
    let retry = orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    assert!(retry.duplicate, "recognised, not AlreadyPlaced");
    assert_eq!(retry.events, placed.events);
    assert_eq!(retry.version(), 1);
    assert!(retry.publish.is_none() && retry.delivery_failures.is_empty());
    assert_eq!(all(&store).await.len(), 1, "one append");

    // A new request decides on the current state.
    let again = orders
        .execute_once("req-2", sample_order("o-1", "ada"))
        .await;
    assert!(matches!(
        again.unwrap_err().as_rejection(),
        Some(OrderError::AlreadyPlaced)
    ));
    let shipped = orders.execute_once("req-3", ship("o-1")).await.unwrap();
    assert!(!shipped.duplicate);
    assert_eq!(shipped.version(), 2);
    let retry = orders.execute_once("req-3", ship("o-1")).await.unwrap();
    assert!(retry.duplicate, "recognised, not AlreadyShipped");
    assert_eq!(retry.events, shipped.events);
    // The first command's id is still recognised after later ones.
    let first = orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    assert_eq!(first.events, placed.events);
    assert_eq!(first.version(), 2, "the aggregate as it is now");
    let stored = all(&store).await;
    assert_eq!(stored.len(), 2);
    let ids: Vec<_> = stored.iter().map(|e| e.metadata.command_id()).collect();
    assert_eq!(ids, [Some("req-1"), Some("req-3")]);

    // Ids are per aggregate: the same id on another order is another command.
    let other = orders
        .execute_once("req-1", sample_order("o-2", "bob"))
        .await
        .unwrap();
    assert!(!other.duplicate);
    assert_eq!(all(&store).await.len(), 3);
}

/// The append was stored but its caller saw an error: the retry answers with the stored
/// events.
async fn a_lost_commit_is_answered_with_the_stored_events(store: impl EventStore + Clone) {
    let uncertain = Uncertain::new(store.clone(), Duration::ZERO);
    let orders = CommandService::<Order>::new(uncertain.clone());
    uncertain.lose_next_commit();
    let lost = orders
        .execute_once("req-9", sample_order("o-9", "ada"))
        .await
        .unwrap_err();
    assert!(matches!(
        lost,
        CommandError::Repository(RepositoryError::Store(StoreError::Unavailable(_)))
    ));
    let stream = StreamId::new("Order", "o-9");
    let stored = store.load(&stream, 1).await.unwrap();
    assert_eq!(stored.len(), 1, "stored all the same");

    let retry = orders
        .execute_once("req-9", sample_order("o-9", "ada"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.events, stored);
    assert_eq!(
        store.load(&stream, 1).await.unwrap(),
        stored,
        "nothing appended again"
    );
}

#[tokio::test]
async fn in_memory_a_retry_with_the_same_id_returns_the_first_events() {
    retries_return_the_first_outcome(InMemoryEventStore::new()).await;
}

#[tokio::test]
async fn in_memory_a_lost_commit_is_answered_with_the_stored_events() {
    a_lost_commit_is_answered_with_the_stored_events(InMemoryEventStore::new()).await;
}

/// Two executions of one id at once (a retry racing the first attempt): both load before
/// either saves; the one that loses the race gets the winner's events, not a conflict.
#[tokio::test]
async fn a_retry_racing_the_first_attempt_gets_its_events_not_a_conflict() {
    let store = InMemoryEventStore::new();
    let slow = Uncertain::new(store.clone(), Duration::from_millis(50));
    let orders = CommandService::<Order>::new(slow);
    let (a, b) = tokio::join!(
        orders.execute_once("req-1", sample_order("o-1", "ada")),
        orders.execute_once("req-1", sample_order("o-1", "ada")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.duplicate != b.duplicate, "one decided, one recognised");
    assert_eq!(a.events, b.events);
    assert_eq!(all(&store).await.len(), 1);

    // A different command winning the race is a conflict still.
    let (c, d) = tokio::join!(
        orders.execute_once("req-2", ship("o-1")),
        orders.execute_once("req-3", ship("o-1")),
    );
    let conflicts = [&c, &d]
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.as_conflict().is_some()))
        .count();
    assert_eq!((c.is_ok() || d.is_ok(), conflicts), (true, 1));
}

/// The command span names the command id; a recognised one says so, stores nothing, and
/// counts the first execution's events.
#[tokio::test]
async fn the_command_span_names_the_id_and_marks_a_duplicate() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    let spans = capture.spans();
    let commands = spans.all("command.PlaceOrder");
    assert_eq!(commands.len(), 2, "{}", spans.tree());
    for command in &commands {
        assert_eq!(
            attribute(command, attr::COMMAND_ID),
            Some(&Value::String("req-1".into()))
        );
        assert_eq!(attribute(command, attr::EVENT_COUNT), Some(&Value::I64(1)));
    }
    assert_eq!(attribute(commands[0], attr::COMMAND_DUPLICATE), None);
    assert_eq!(
        attribute(commands[1], attr::COMMAND_DUPLICATE),
        Some(&Value::Bool(true))
    );
    let saves: Vec<_> = spans
        .all(attr::SPAN_REPOSITORY_SAVE)
        .into_iter()
        .filter(|s| {
            spans.parent(s).map(|p| p.span_context.span_id())
                == Some(commands[1].span_context.span_id())
        })
        .collect();
    assert!(saves.is_empty(), "no save for the duplicate");
    assert_eq!(spans.all(attr::SPAN_STORE_APPEND).len(), 1);
}

// ---- snapshots ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added;

#[derive(Debug, Default, Aggregate, Serialize, Deserialize)]
#[aggregate(type = "Tally", events(Added))]
pub struct Tally {
    count: u64,
}

impl Apply<Added> for Tally {
    fn apply(&mut self, _: &Added) {
        self.count += 1;
    }
}

/// Adds `.0` to the tally `t-1`: as many events.
struct Add(usize);

impl Command for Add {
    const TYPE: &'static str = "Add";
    fn aggregate_id(&self) -> String {
        "t-1".into()
    }
}

impl Handle<Add> for Tally {
    type Error = std::convert::Infallible;
    fn handle(&self, command: Add) -> Result<Vec<TallyEvent>, Self::Error> {
        Ok(vec![Added.into(); command.0])
    }
}

async fn add(tallies: &CommandService<Tally>, command_id: &str, n: usize) -> CommandOutcome<Tally> {
    tallies.execute_once(command_id, Add(n)).await.unwrap()
}

/// With snapshots every 2 events, the command whose save took the snapshot (its events end
/// at the snapshot's version) is recognised, even when it appended more events than the
/// interval; ids among the last `every` events before the snapshot are too; older ones
/// are not (the documented limit).
#[tokio::test]
async fn with_snapshots_the_command_that_took_the_snapshot_is_recognised() {
    let store = InMemoryEventStore::new();
    let snapshots = InMemorySnapshotStore::new();
    let repository = Repository::<Tally>::new(store.clone()).with_snapshots(snapshots.clone(), 2);
    let tallies = CommandService::with_repository(repository, Default::default());
    let stream = StreamId::new("Tally", "t-1");

    add(&tallies, "c1", 1).await; // v1
    let c2 = add(&tallies, "c2", 1).await; // v2: snapshot at 2
    assert_eq!(snapshots.get(&stream).await.unwrap().unwrap().version, 2);
    let retry = add(&tallies, "c2", 1).await;
    assert!(retry.duplicate);
    assert_eq!(retry.events, c2.events);
    let retry = add(&tallies, "c1", 1).await; // v1: within `every` of the snapshot
    assert!(retry.duplicate);

    let c3 = add(&tallies, "c3", 3).await; // v3..v5: snapshot at 5
    assert_eq!(snapshots.get(&stream).await.unwrap().unwrap().version, 5);
    let retry = add(&tallies, "c3", 3).await;
    assert!(retry.duplicate);
    assert_eq!(
        retry.events, c3.events,
        "all three, the first before the window"
    );
    assert_eq!(retry.aggregate.state().count, 5);
    assert_eq!(all(&store).await.len(), 5);

    // c1 (v1) is older than the snapshot's window: no longer recognised.
    let old = add(&tallies, "c1", 1).await;
    assert!(!old.duplicate);
    assert_eq!(all(&store).await.len(), 6);
}

// ---- PostgreSQL -----------------------------------------------------------------------------

/// `let Some(db) = db!("name") else { return };`
macro_rules! db {
    ($test:literal) => {
        TestDb::open($test).await
    };
}

#[tokio::test]
async fn postgres_a_retry_with_the_same_id_returns_the_first_events() {
    let Some(db) = db!("postgres_a_retry_with_the_same_id_returns_the_first_events") else {
        return;
    };
    let pool = db.pool(4).await;
    let schema = db.schema();
    let store = db.store_in(&pool, &schema).await;
    retries_return_the_first_outcome(store.clone()).await;
    a_lost_commit_is_answered_with_the_stored_events(store.clone()).await;

    // The rows as stored: one per decided event, each with its command id.
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT stream_id, event_type, metadata->>'{}' FROM \"{schema}\".events ORDER BY position",
        Metadata::COMMAND_ID
    ))
    .fetch_all(db.admin())
    .await
    .unwrap();
    let expected = [
        ("o-1", "OrderPlaced", "req-1"),
        ("o-1", "OrderShipped", "req-3"),
        ("o-2", "OrderPlaced", "req-1"),
        ("o-9", "OrderPlaced", "req-9"),
    ];
    let expected: Vec<(String, String, Option<String>)> = expected
        .iter()
        .map(|(s, t, c)| ((*s).into(), (*t).into(), Some((*c).into())))
        .collect();
    assert_eq!(rows, expected);
    pool.close().await;
    db.cleanup().await;
}
