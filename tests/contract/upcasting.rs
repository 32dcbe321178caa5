//! The flows that upcast: a load, a runner's projection spans (one event, and a batch), a
//! consumed message and a parked event that cannot be upcast, so that the contract's
//! upcasting keys and counter are checked against what is exported.

use std::sync::Arc;

use eventsource_runtime::bus::{EventBus, HandlerError, InMemoryEventBus, handler_fn};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::event::upcast::Upcasters;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::UnreadablePolicy;
use eventsource_runtime::store::ExpectedVersion;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Version 2: the title is called a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    pub name: String,
}

/// Version 2, whose upcaster from 1 always fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audited;

fn ledger_upcasters() -> Upcasters {
    Upcasters::new()
        .step("Renamed", 1, |payload| {
            payload["name"] = payload["title"].take();
            Ok::<_, &str>(())
        })
        .step("Audited", 1, |_| Err("the audit format of version 1 is unreadable"))
}

#[derive(Default, Aggregate)]
#[aggregate(
    type = "Ledger",
    events(Renamed(version = 2), Audited(version = 2)),
    upcasters = ledger_upcasters
)]
pub struct Ledger {
    name: String,
}

impl Apply<Renamed> for Ledger {
    fn apply(&mut self, event: &Renamed) {
        self.name.clone_from(&event.name);
    }
}

impl Apply<Audited> for Ledger {
    fn apply(&mut self, _: &Audited) {}
}

/// One call per event, its spans on.
#[derive(Default)]
struct LedgerNames(Vec<String>);

#[eventsource_runtime::projection(enable_tracing = true)]
impl LedgerNames {
    fn on_renamed(&mut self, event: &Renamed) {
        self.0.push(event.name.clone());
    }
}

/// Up to 16 events per call, its spans on.
#[derive(Default)]
struct LedgerCounter(usize);

#[eventsource_runtime::async_trait]
impl Projection for LedgerCounter {
    fn name(&self) -> &str {
        "LedgerCounter"
    }
    fn tracing_enabled(&self) -> bool {
        true
    }
    fn max_batch(&self) -> usize {
        16
    }
    fn upcasters(&self) -> Upcasters {
        LedgerEvent::upcasters().clone()
    }
    async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
        self.0 += 1;
        Ok(())
    }
}

fn renamed_v1(title: &str) -> NewEvent {
    NewEvent::new("Renamed", 1, json!({ "title": title }))
}

/// Runs every flow that upcasts.
pub(crate) async fn run() {
    LedgerEvent::upcasters().check().unwrap();
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Ledger", "l-1");
    let stored = store
        .append(&stream, ExpectedVersion::NoStream, vec![renamed_v1("Main")])
        .await
        .unwrap();

    let ledgers = Repository::<Ledger>::new(store.clone());
    assert_eq!(ledgers.load("l-1").await.unwrap().state().name, "Main");

    let names = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        LedgerNames::default(),
    );
    names.run_until_caught_up().await.unwrap();
    assert_eq!(names.projection().lock().await.0, ["Main"]);

    let counter = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        LedgerCounter::default(),
    );
    counter.run_until_caught_up().await.unwrap();
    assert_eq!(counter.projection().lock().await.0, 1);

    // An older producer's message, consumed by a handler that reads version 2.
    let bus = InMemoryEventBus::new();
    bus.subscribe(
        handler_fn("ledger-names", |event: EventEnvelope| async move {
            let renamed = event.decode_as::<Renamed>().expect("a Renamed event")?;
            assert_eq!(renamed.name, "Main");
            Ok::<(), HandlerError>(())
        })
        .upcasting(LedgerEvent::upcasters()),
    );
    bus.publish(&stored.events).await.unwrap();

    // An event no upcaster can read, parked.
    store
        .append(
            &StreamId::new("Ledger", "l-2"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Audited", 1, json!({}))],
        )
        .await
        .unwrap();
    let parking = ProjectionRunner::new(
        Arc::new(store),
        Arc::new(InMemoryCheckpointStore::new()),
        LedgerCounter::default(),
    )
    .on_unreadable(UnreadablePolicy::Park);
    parking.run_until_caught_up().await.unwrap();
    assert_eq!(parking.parked().await.unwrap().len(), 1);
}
