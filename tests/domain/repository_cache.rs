//! The repository's cache (`Repository::with_cache`, on by default for a derived aggregate
//! that is `Clone`): a load reads only the events after the cached version (read back from
//! the load span), catches up with what other writers appended, keeps at most its capacity,
//! and never lets a command decide on a state the store has moved past: concurrent writers
//! through caches of their own meet version conflicts and retry, and the stream comes out
//! gapless, each event deciding on the one before.

use crate::domain;

use std::sync::Arc;

use domain::{CancelOrder, Order, OrderError, ShipOrder, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture};
use opentelemetry::Value;
use serde::{Deserialize, Serialize};

fn cached_service(store: &InMemoryEventStore, capacity: usize) -> CommandService<Order> {
    CommandService::with_repository(
        Repository::new(store.clone()).with_cache(capacity),
        ProjectionRegistry::new(),
    )
}

fn ship(order_id: &str) -> ShipOrder {
    ShipOrder {
        order_id: order_id.into(),
        carrier: "dhl".into(),
    }
}

/// `(events replayed, version)` of each load span, in order.
fn loads(spans: &eventsource_runtime::testing::CapturedSpans) -> Vec<(i64, i64)> {
    spans
        .all(attr::SPAN_REPOSITORY_LOAD)
        .into_iter()
        .map(|span| {
            let int = |key| match attribute(span, key) {
                Some(Value::I64(v)) => *v,
                other => panic!("{key}: {other:?}"),
            };
            (int(attr::EVENTS_REPLAYED), int(attr::VERSION))
        })
        .collect()
}

#[tokio::test]
async fn a_cached_aggregate_is_loaded_without_replaying_its_stream() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = cached_service(&store, 100);

    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let shipped = orders.execute(ship("o-1")).await.unwrap();
    assert_eq!(shipped.version(), 2);
    assert_eq!(
        shipped.aggregate.state().status,
        domain::OrderStatus::Shipped
    );
    drop(shipped); // its root goes back to the cache
    let rejected = orders
        .execute(CancelOrder {
            order_id: "o-1".into(),
            reason: "late".into(),
        })
        .await;
    assert!(matches!(
        rejected,
        Err(CommandError::Rejected(OrderError::AlreadyShipped))
    ));

    // The first load finds nothing; the next ones start from the cache: nothing replayed.
    // The rejected command put its aggregate back: the next load starts from it too.
    assert!(orders.execute(ship("o-1")).await.is_err());
    assert_eq!(loads(&capture.spans()), [(0, 0), (0, 1), (0, 2), (0, 2)]);
    assert_eq!(orders.repository().cached(), 1);

    // Without a cache, the same loads replay the stream.
    capture.clear();
    let uncached = CommandService::with_repository(
        Repository::<Order>::new(store.clone()).with_cache(0),
        ProjectionRegistry::new(),
    );
    assert!(uncached.execute(ship("o-1")).await.is_err());
    assert!(uncached.execute(ship("o-1")).await.is_err());
    assert_eq!(loads(&capture.spans()), [(2, 2), (2, 2)]);
    assert_eq!(uncached.repository().cached(), 0);
}

#[tokio::test]
async fn a_repository_caches_by_default() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders.execute(ship("o-1")).await.unwrap();
    assert_eq!(loads(&capture.spans()), [(0, 0), (0, 1)]);
    assert_eq!(orders.repository().cached(), 1);
    let repository = format!("{:?}", orders.repository());
    assert!(
        repository.contains(&format!(
            "cache_capacity: Some({})",
            eventsource_runtime::repository::DEFAULT_CACHE_CAPACITY
        )),
        "{repository}"
    );
}

/// An event any order state takes (the test records it directly, deciding nothing).
fn note() -> domain::OrderCancelled {
    domain::OrderCancelled {
        reason: "noted".into(),
    }
}

/// A root in use is not in the cache; it comes back when dropped, unless its state was
/// changed other than by recording and saving.
#[tokio::test]
async fn a_root_comes_back_when_dropped_at_a_stored_version_only() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let placed = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    // The outcome still holds the root: the next load reads the stream.
    assert_eq!(orders.repository().cached(), 0);
    let shipped = orders.execute(ship("o-1")).await.unwrap();
    drop(placed); // version 1 comes back ...
    drop(shipped); // ... and version 2 replaces it.
    assert_eq!(orders.repository().cached(), 1);
    assert!(orders.execute(ship("o-1")).await.is_err()); // from the cache, at version 2

    // Roots dropped in any order: the newest state stays.
    let repository = orders.repository();
    let older = repository.load("o-1").await.unwrap(); // from the cache
    let mut newer = repository.load("o-1").await.unwrap(); // from the stream
    newer.record(note());
    repository.save(&mut newer).await.unwrap();
    drop(newer);
    drop(older);
    assert_eq!(repository.load("o-1").await.unwrap().version(), 3);

    // Recorded but not saved: the root does not come back.
    let mut unsaved = repository.load("o-1").await.unwrap();
    unsaved.record(note());
    drop(unsaved);
    assert_eq!(repository.cached(), 0);
    // Taken out unsaved: neither.
    let mut taken = repository.load("o-1").await.unwrap();
    taken.record(note());
    taken.take_uncommitted();
    drop(taken);
    assert_eq!(repository.cached(), 0);

    capture.clear();
    repository.load("o-1").await.unwrap();
    repository.load("o-1").await.unwrap();
    assert_eq!(loads(&capture.spans()), [(3, 3), (0, 3)]);

    // Saved through a repository without a cache: the root goes back nowhere.
    let uncached = Repository::<Order>::new(store.clone()).with_cache(0);
    let mut elsewhere = repository.load("o-1").await.unwrap(); // from the cache
    elsewhere.record(note());
    uncached.save(&mut elsewhere).await.unwrap();
    drop(elsewhere);
    assert_eq!(repository.cached(), 0);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lined {
    pub line: u64,
}

/// A state that cannot be copied (no `Clone`).
#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Ledger", events(Lined))]
pub struct Ledger {
    lines: Vec<u64>,
}

impl Apply<Lined> for Ledger {
    fn apply(&mut self, event: &Lined) {
        self.lines.push(event.line);
    }
}

impl Handle<Increment> for Ledger {
    type Error = std::convert::Infallible;
    fn handle(&self, _: Increment) -> Result<Vec<LedgerEvent>, Self::Error> {
        let line = self.lines.len() as u64 + 1;
        Ok(vec![Lined { line }.into()])
    }
}

#[tokio::test]
async fn a_state_need_not_be_clone_to_be_cached() {
    let capture = capture();
    let ledgers = CommandService::<Ledger>::new(InMemoryEventStore::new());
    for _ in 0..3 {
        ledgers.execute(Increment("l-1".into())).await.unwrap();
    }
    assert_eq!(loads(&capture.spans()), [(0, 0), (0, 1), (0, 2)]);
    assert_eq!(ledgers.repository().cached(), 1);
    let ledger = ledgers.repository().load("l-1").await.unwrap();
    assert_eq!(ledger.state().lines, [1, 2, 3]);
}

// ---- concurrent writers ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    /// The count this event brings the counter to: decided from the state it saw.
    pub to: u64,
}

#[derive(Debug, Clone, Default, Aggregate)]
#[aggregate(type = "Counter", events(Counted))]
pub struct Counter {
    count: u64,
}

impl Apply<Counted> for Counter {
    fn apply(&mut self, event: &Counted) {
        self.count = event.to;
    }
}

pub struct Increment(String);

impl Command for Increment {
    const TYPE: &'static str = "Increment";
    fn aggregate_id(&self) -> String {
        self.0.clone()
    }
}

impl Handle<Increment> for Counter {
    type Error = std::convert::Infallible;
    fn handle(&self, _: Increment) -> Result<Vec<CounterEvent>, Self::Error> {
        Ok(vec![Counted { to: self.count + 1 }.into()])
    }
}

/// Two services, each with a cache of its own, increment one counter from 4 tasks at once,
/// retrying on version conflicts. A stale cached state can only lose its save: every stored
/// event counts one more than the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_caches_of_their_own_never_decide_on_a_stale_state() {
    const PER_TASK: u64 = 50;
    let store = InMemoryEventStore::new();
    let services: Vec<Arc<CommandService<Counter>>> = (0..2)
        .map(|_| {
            Arc::new(CommandService::with_repository(
                Repository::new(store.clone()).with_cache(16),
                ProjectionRegistry::new(),
            ))
        })
        .collect();
    let mut tasks = Vec::new();
    for task in 0..4 {
        let service = Arc::clone(&services[task % 2]);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..PER_TASK {
                loop {
                    match service.execute(Increment("c-1".into())).await {
                        Ok(_) => break,
                        Err(error) if error.as_conflict().is_some() => {
                            conflicts += 1;
                            // A cache that never caught up would conflict forever.
                            assert!(conflicts < 10_000, "a writer never caught up");
                        }
                        Err(other) => panic!("{other}"),
                    }
                    tokio::task::yield_now().await;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }

    let stored = store
        .load(&StreamId::new("Counter", "c-1"), 1)
        .await
        .unwrap();
    let counts: Vec<u64> = stored
        .iter()
        .map(|e| e.payload.decode::<Counted>().unwrap().to)
        .collect();
    assert_eq!(counts, (1..=4 * PER_TASK).collect::<Vec<_>>());
    let versions: Vec<u64> = stored.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=4 * PER_TASK).collect::<Vec<_>>());
    // Each cache ends current after one more load.
    for service in &services {
        let counter = service.repository().load("c-1").await.unwrap();
        assert_eq!(counter.state().count, 4 * PER_TASK);
    }
    eprintln!("{conflicts} version conflicts retried");
}

#[tokio::test]
async fn a_command_id_is_recognised_with_a_cache() {
    let store = InMemoryEventStore::new();
    let orders = cached_service(&store, 100);
    let first = orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    orders.execute(ship("o-1")).await.unwrap();
    let retry = orders
        .execute_once("req-1", sample_order("o-1", "ada"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.events[0].event_id, first.events[0].event_id);
    assert_eq!(store.len(), 2);
}
