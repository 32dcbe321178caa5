//! The flows that upcast: a load, a runner's projection spans (one event, and a batch), a
//! consumed message and a parked event that cannot be upcast, so that the contract's
//! upcasting keys and counter are checked against what is exported.

use std::convert::Infallible;
use std::sync::Arc;

use eventsource_runtime::bus::{HandlerError, InMemoryEventBus, handler_fn};
use eventsource_runtime::event::upcast::Upcasters;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::UnreadablePolicy;
use serde::{Deserialize, Serialize};

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
        .step("Audited", 1, |_| {
            Err("the audit format of version 1 is unreadable")
        })
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

/// The older code: the same aggregate when `Renamed` and `Audited` were at version 1.
mod v1 {
    use eventsource_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Renamed {
        pub title: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Audited;

    #[derive(Default, Aggregate)]
    #[aggregate(type = "Ledger", events(Renamed, Audited), event_enum = LedgerV1Event)]
    pub struct LedgerV1;

    impl Apply<Renamed> for LedgerV1 {
        fn apply(&mut self, _: &Renamed) {}
    }

    impl Apply<Audited> for LedgerV1 {
        fn apply(&mut self, _: &Audited) {}
    }
}

/// Runs every flow that upcasts: the older code stores and publishes version 1 events,
/// today's reads them.
pub(crate) async fn run() {
    LedgerEvent::upcasters().check().unwrap();
    let store = InMemoryEventStore::new();

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
    CommandService::<v1::LedgerV1>::new(store.clone())
        .with_bus(bus)
        .execute_with("l-1", |_| {
            Ok::<_, Infallible>(vec![v1::LedgerV1Event::from(v1::Renamed {
                title: "Main".into(),
            })])
        })
        .await
        .unwrap();

    // Today's command loads the upcast event.
    CommandService::<Ledger>::new(store.clone())
        .execute_with("l-1", |ledger: &Ledger| {
            assert_eq!(ledger.name, "Main");
            Ok::<_, Infallible>(Vec::new())
        })
        .await
        .unwrap();

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

    // An event no upcaster can read, parked.
    CommandService::<v1::LedgerV1>::new(store.clone())
        .execute_with("l-2", |_| {
            Ok::<_, Infallible>(vec![v1::LedgerV1Event::from(v1::Audited)])
        })
        .await
        .unwrap();
    let parking = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        LedgerCounter::default(),
    )
    .on_unreadable(UnreadablePolicy::Park);
    parking.run_until_caught_up().await.unwrap();
    assert_eq!(parking.parked().await.unwrap().len(), 1);

    // The same event under the default policy: the runner stops there, with a stop span.
    let stopping = ProjectionRunner::new(
        Arc::new(store),
        Arc::new(InMemoryCheckpointStore::new()),
        LedgerCounter::default(),
    );
    assert!(stopping.run_until_caught_up().await.is_err());
}
