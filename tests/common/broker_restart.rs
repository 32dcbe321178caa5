//! The broker restart scenario, written once for every broker (`tests/processes/kafka_restart.rs`,
//! `tests/processes/nats_restart.rs`, `tests/processes/rabbitmq_restart.rs` say how each broker goes down and
//! comes back): a consumer group and the relay run while commands store events; the broker
//! goes down after the first ten are handled; commands go on, a publish meanwhile is a typed
//! error and the relay's failures are typed too; the broker comes back; every stored event
//! is handled (at least once: duplicates are counted and reported, never an event lost or
//! one handled that was never stored).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_runtime::bus::{BusError, EventBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::{Order, sample_order};
use crate::server_process::Recording;

/// Every delivery of the group's handler, by event id.
pub type Handled = Arc<Mutex<BTreeMap<uuid::Uuid, usize>>>;

/// A consumer group's run, as spawned.
pub type Consuming = JoinHandle<Result<(), BusError>>;

/// What one broker does in the scenario.
pub trait Outage: Send {
    /// The broker's bus.
    type Bus: EventBus + Clone + Send + Sync + 'static;

    /// The scenario's name in its output lines (`kafka restart`).
    const LABEL: &'static str;
    /// How long the first ten events may take to be handled (a group's first join).
    const FIRST_WITHIN: Duration;
    /// How long the rest may take once the broker is back.
    const REST_WITHIN: Duration;

    /// A bus on destinations of the run's own.
    fn bus(&self) -> Self::Bus;

    /// The group `mailer` on `bus`, bound to `Order.*`, declared, its one handler recording
    /// each delivery in `handled`, running until `stopped` says so.
    fn consume(
        &self,
        bus: &Self::Bus,
        handled: Handled,
        stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = Consuming> + Send;

    /// Takes the broker down (the first ten events were handled); `store` holds them.
    fn take_down(&mut self, store: &InMemoryEventStore) -> impl Future<Output = ()> + Send;

    /// Brings the broker back, the commands of the outage stored meanwhile.
    fn bring_back(&mut self) -> impl Future<Output = ()> + Send;

    /// After every event was handled and the group and the relay stopped: the broker's own
    /// report and clean-up.
    fn finish(self, deliveries: &BTreeMap<uuid::Uuid, usize>) -> impl Future<Output = ()> + Send;
}

/// Runs the scenario against `outage`'s broker.
pub async fn broker_restart<O: Outage>(mut outage: O) {
    let label = O::LABEL;
    let bus = outage.bus();
    let handled = Handled::default();
    let (stop, stopped) = watch::channel(false);
    let consuming = outage
        .consume(&bus, Arc::clone(&handled), stopped.clone())
        .await;

    let store = InMemoryEventStore::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let relayed = Recording {
        bus: bus.clone(),
        failures: Arc::clone(&failures),
    };
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(relayed),
    )
    .poll_interval(Duration::from_millis(20))
    .backoff(Duration::from_millis(100), Duration::from_millis(500));
    let relaying = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };

    let orders = CommandService::<Order>::new(store.clone());
    let place = |range: std::ops::Range<usize>| {
        let orders = &orders;
        async move {
            for i in range {
                orders
                    .execute(sample_order(&format!("o-{i}"), "ada"))
                    .await
                    .unwrap();
            }
        }
    };
    let wait_for = |n: usize, within: Duration| {
        let handled = Arc::clone(&handled);
        async move {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if handled.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "only {} of {n} events handled within {within:?}",
                handled.lock().unwrap().len()
            );
        }
    };

    // Before: the group joins and handles the first ten.
    place(0..10).await;
    wait_for(10, O::FIRST_WITHIN).await;

    // During: the broker is down; commands go on (the store is not the broker).
    outage.take_down(&store).await;
    place(10..20).await;
    // A publish meanwhile is a typed error, never a silent drop.
    let direct = store.read_all(1, 1).await.unwrap();
    let publishing = Instant::now();
    let refused = bus.publish(&direct).await;
    eprintln!(
        "{label}: a publish while down: {:?} after {:?}",
        refused.as_ref().err(),
        publishing.elapsed()
    );
    assert!(
        matches!(
            refused,
            Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. })
        ),
        "{refused:?}"
    );
    outage.bring_back().await;

    // After: more commands; everything arrives.
    place(20..30).await;
    wait_for(30, O::REST_WITHIN).await;
    let stored = store.read_all(1, usize::MAX).await.unwrap();
    let stored_ids: BTreeSet<uuid::Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids.len(), 30);
    let deliveries = handled.lock().unwrap().clone();
    let ids: BTreeSet<uuid::Uuid> = deliveries.keys().copied().collect();
    let missing: Vec<_> = stored_ids.difference(&ids).collect();
    let unknown: Vec<_> = ids.difference(&stored_ids).collect();
    assert!(missing.is_empty(), "never handled: {missing:?}");
    assert!(unknown.is_empty(), "handled but never stored: {unknown:?}");
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    // Which commands' events came more than once: before, during or after the outage.
    let twice: Vec<u64> = stored
        .iter()
        .filter(|e| deliveries.get(&e.event_id).is_some_and(|n| *n > 1))
        .map(|e| e.position)
        .collect();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "{label}: {} events stored, all handled; {duplicates} duplicate deliveries (store \
         positions {twice:?}); relay publish failures while down: {failures:?}",
        stored.len()
    );
    assert!(
        !failures.is_empty(),
        "the relay saw the broker down (a typed error)"
    );
    assert!(
        failures
            .iter()
            .all(|kind| kind == "Unavailable" || kind == "Unconfirmed"),
        "only Unavailable / Unconfirmed: {failures:?}"
    );

    stop.send(true).unwrap();
    consuming.await.unwrap().unwrap();
    relaying.await.unwrap().unwrap();
    outage.finish(&deliveries).await;
}

/// `group`'s handler `count`, recording each delivery in `handled`; the group declared, then
/// run until `stopped` says stop. The same code for each broker's group, whose types share
/// their builder methods, not a trait.
#[macro_export]
macro_rules! count_and_run {
    ($group:expr, $handled:expr, $stopped:expr) => {{
        let group = $group;
        let handled: $crate::broker_restart::Handled = $handled;
        let mut stopped: ::tokio::sync::watch::Receiver<bool> = $stopped;
        group.subscribe_fn("count", move |event| {
            let handled = handled.clone();
            async move {
                *handled.lock().unwrap().entry(event.event_id).or_default() += 1;
                Ok::<(), ::eventsource_runtime::bus::HandlerError>(())
            }
        });
        group.declare().await.unwrap();
        ::tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    }};
}
