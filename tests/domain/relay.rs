//! The store as the outbox: the relay publishes every stored event at least once, in order,
//! in the trace of the command that stored it, and picks up after a crash where the bus
//! last confirmed.

use crate::domain;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError, PublishReport};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::capture;

/// Records what it publishes on an in-memory bus; fails every publish while `down` is set,
/// and the publish of the event at `fail_once_at` once.
#[derive(Clone, Default)]
struct Flaky {
    inner: InMemoryEventBus,
    down: Arc<AtomicUsize>,
    fail_once_at: Arc<Mutex<Option<u64>>>,
    published: Arc<Mutex<Vec<u64>>>,
}

#[eventsource_runtime::async_trait]
impl EventBus for Flaky {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        if self.down.load(Ordering::SeqCst) > 0 {
            self.down.fetch_sub(1, Ordering::SeqCst);
            return Err(BusError::unavailable("broker down"));
        }
        let fails = {
            let mut fail_at = self.fail_once_at.lock().unwrap();
            let fails = events.iter().any(|e| Some(e.position) == *fail_at);
            if fails {
                *fail_at = None;
            }
            fails
        };
        if fails {
            return Err(BusError::unavailable("connection reset"));
        }
        let report = self.inner.publish(events).await?;
        self.published
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.position));
        Ok(report)
    }
}

async fn store_orders(store: &InMemoryEventStore, n: usize) {
    let orders = CommandService::<Order>::new(store.clone());
    for i in 0..n {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
}

fn relay(store: &InMemoryEventStore, checkpoints: &InMemoryCheckpointStore, bus: &Flaky) -> Relay {
    Relay::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Arc::new(bus.clone()),
    )
    .backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(5),
    )
}

#[tokio::test]
async fn the_relay_publishes_in_the_trace_of_the_command_that_stored_the_event() {
    let capture = capture();
    let store = InMemoryEventStore::new();
    let bus = Flaky::default();
    bus.inner
        .subscribe_fn("audit", |_event| async { Ok::<(), HandlerError>(()) });
    // No bus on the service: the events are only stored.
    let orders = CommandService::<Order>::new(store.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let checkpoints = InMemoryCheckpointStore::new();
    assert_eq!(
        relay(&store, &checkpoints, &bus)
            .run_until_caught_up()
            .await
            .unwrap(),
        1
    );

    let spans = capture.spans();
    let command = spans.get("command.PlaceOrder");
    let append = spans.get(attr::SPAN_STORE_APPEND);
    let publish = spans.get(attr::SPAN_BUS_PUBLISH);
    assert_eq!(
        publish.parent_span_id,
        append.span_context.span_id(),
        "a child of the context stored with the event\n{}",
        spans.tree()
    );
    assert_eq!(
        publish.span_context.trace_id(),
        command.span_context.trace_id()
    );
    spans.assert_child_of(attr::SPAN_BUS_CONSUME, attr::SPAN_BUS_PUBLISH);
    spans.assert_child_of(attr::SPAN_BUS_HANDLE, attr::SPAN_BUS_CONSUME);
}

#[tokio::test]
async fn the_checkpoint_moves_only_after_the_bus_confirmed_and_a_restart_goes_on_from_it() {
    let store = InMemoryEventStore::new();
    store_orders(&store, 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let bus = Flaky::default();

    // The bus refuses twice: the relay waits and tries again; nothing is skipped.
    bus.down.store(2, Ordering::SeqCst);
    let first = relay(&store, &checkpoints, &bus);
    assert_eq!(first.run_until_caught_up().await.unwrap(), 3);
    assert_eq!(*bus.published.lock().unwrap(), [1, 2, 3]);
    assert_eq!(first.checkpoint().await.unwrap(), 3);
    drop(first);

    // A new process: only what was stored since.
    let orders = CommandService::<Order>::new(store.clone());
    orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap();
    let second = relay(&store, &checkpoints, &bus);
    assert_eq!(second.run_until_caught_up().await.unwrap(), 4);
    assert_eq!(*bus.published.lock().unwrap(), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_batch_that_fails_part_way_is_published_again_from_where_it_failed() {
    let store = InMemoryEventStore::new();
    store_orders(&store, 6).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let bus = Flaky::default();
    *bus.fail_once_at.lock().unwrap() = Some(4);
    let relay = relay(&store, &checkpoints, &bus);
    assert_eq!(relay.run_until_caught_up().await.unwrap(), 6);
    assert_eq!(
        *bus.published.lock().unwrap(),
        [1, 2, 3, 4, 5, 6],
        "the three published before the failure are not published again"
    );
}

#[tokio::test]
async fn a_relay_killed_mid_run_loses_nothing_after_a_restart() {
    let store = InMemoryEventStore::new();
    store_orders(&store, 50).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let bus = Flaky::default();

    // Killed (its task aborted) while publishing: between a confirm and a checkpoint save.
    let running = relay(&store, &checkpoints, &bus).batch_size(7);
    let task = tokio::spawn(async move { running.run(std::future::pending::<()>()).await });
    while bus.published.lock().unwrap().len() < 20 {
        tokio::task::yield_now().await;
    }
    task.abort();
    let _ = task.await;

    let restarted = relay(&store, &checkpoints, &bus);
    assert_eq!(restarted.run_until_caught_up().await.unwrap(), 50);
    let published = bus.published.lock().unwrap().clone();
    let distinct: BTreeSet<u64> = published.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=50).collect(),
        "every stored event, at least once"
    );
    // Two runs, each in order without a gap: the second starts again after the checkpoint,
    // at most a batch before where the first stopped.
    let restarts: Vec<usize> = (1..published.len())
        .filter(|&i| published[i] != published[i - 1] + 1)
        .collect();
    assert!(restarts.len() <= 1, "{published:?}");
    if let [restart] = restarts[..] {
        assert!(
            published[restart] <= published[restart - 1],
            "{published:?}"
        );
        assert!(
            published[restart - 1] - published[restart] < 7,
            "{published:?}"
        );
    }
}
