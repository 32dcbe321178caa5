//! Concurrent commands on one aggregate, in one process: when they meet a version conflict
//! (what `docs/guide/domain.md` and `docs/guide/http-services.md` say about `409`).
//!
//! Nothing queues one aggregate's commands: two that overlap between their load and their
//! append conflict. The in-memory store answers without waiting, so on one thread a
//! command's load, decision and append never overlap another's; a store whose calls wait on
//! I/O (SQLite here) lets every command started at once load the same version.

use std::sync::Arc;

use eventsource_runtime::prelude::*;
use eventsource_runtime::sqlite::SqliteEventStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticked;

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Counter", events(Ticked))]
pub struct Counter;
impl Apply<Ticked> for Counter {
    fn apply(&mut self, _: &Ticked) {}
}

pub struct Tick;
impl Command for Tick {
    const TYPE: &'static str = "Tick";
    fn aggregate_id(&self) -> String {
        "c-1".into()
    }
}
impl Handle<Tick> for Counter {
    type Error = std::convert::Infallible;
    fn handle(&self, _: Tick) -> Result<Vec<CounterEvent>, Self::Error> {
        Ok(vec![Ticked.into()])
    }
}

const COMMANDS: usize = 100;

/// Starts `COMMANDS` executes on one aggregate at once, as concurrent requests would;
/// returns how many succeeded and how many met a version conflict.
async fn race(service: CommandService<Counter>) -> (usize, usize) {
    let service = Arc::new(service);
    let tasks: Vec<_> = (0..COMMANDS)
        .map(|_| {
            let service = Arc::clone(&service);
            tokio::spawn(async move { service.execute(Tick).await.map(|_| ()) })
        })
        .collect();
    let (mut stored, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => stored += 1,
            Err(error) => {
                assert!(error.as_conflict().is_some(), "{error}");
                conflicts += 1;
            }
        }
    }
    (stored, conflicts)
}

#[tokio::test]
async fn in_memory_commands_on_one_thread_never_conflict() {
    let store = InMemoryEventStore::new();
    let (stored, conflicts) = race(CommandService::new(store.clone())).await;
    assert_eq!((stored, conflicts), (COMMANDS, 0));
    let stream = StreamId::new("Counter", "c-1");
    assert_eq!(store.load(&stream, 1).await.unwrap().len(), COMMANDS);
}

#[tokio::test]
async fn commands_waiting_on_the_store_conflict_and_store_nothing() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let (stored, conflicts) = race(CommandService::new(store.clone())).await;
    assert_eq!(stored + conflicts, COMMANDS);
    assert!(conflicts > 0, "{stored} stored, no conflict");
    let stream = StreamId::new("Counter", "c-1");
    assert_eq!(store.load(&stream, 1).await.unwrap().len(), stored);
}
