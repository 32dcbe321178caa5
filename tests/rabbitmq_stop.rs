//! A graceful stop of a RabbitMQ consumer group with messages prefetched behind the one in
//! hand: what the next consumer gets, and how the trace reads (docs/brokers.md, "What a
//! graceful stop hands back").
//!
//! The broker comes from `EVENTSOURCE_AMQP_URL`; without it each test prints `skipped` and
//! passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1`.

#[path = "../examples/domain/order.rs"]
mod domain;
#[path = "common/graceful_stop.rs"]
mod graceful_stop;

use std::io::Write as _;
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::bus::BusError;
use eventsource_runtime::prelude::*;
use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus};
use eventsource_runtime::testing::capture;
use graceful_stop::{Gate, Read, consume_spans_read, each_handled_once, until};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::oneshot;
use uuid::Uuid;

/// One test's broker: an exchange of its own, deleted with the group's queues at the end.
struct Broker {
    url: String,
    exchange: String,
}

impl Broker {
    fn open(test: &str) -> Option<Self> {
        let url = match std::env::var("EVENTSOURCE_AMQP_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                assert!(
                    std::env::var("EVENTSOURCE_REQUIRE_RABBITMQ").as_deref() != Ok("1"),
                    "{test}: EVENTSOURCE_REQUIRE_RABBITMQ=1 but EVENTSOURCE_AMQP_URL is not set"
                );
                let line = format!("{test}: skipped: EVENTSOURCE_AMQP_URL not set\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
                return None;
            }
        };
        let exchange = format!("es-test-{test}-{}", Uuid::now_v7().simple());
        Some(Self { url, exchange })
    }

    fn bus(&self) -> RabbitMqBus {
        RabbitMqBus::new(&self.url)
            .expect("an AMQP URL")
            .with_exchange(&self.exchange)
            .with_confirm_timeout(Duration::from_secs(5))
    }

    /// The group under test: three messages handed over at once.
    fn group(&self, bus: &RabbitMqBus) -> ConsumerGroup {
        bus.consumer_group("mailer")
            .prefetch(3)
            .retry_delays([Duration::from_millis(50)])
    }

    async fn clean(self, group: &ConsumerGroup) {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("the broker");
        let channel = connection.create_channel().await.expect("a channel");
        let live = group.queue().to_owned();
        let dead = group.dead_letters().queue().to_owned();
        for queue in [format!("{live}.retry.50ms"), dead, live] {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = connection.close(200, "clean".into()).await;
    }
}

/// A running consumer group.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    fn start(group: &ConsumerGroup) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let group = group.clone();
        let task = tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self { stop, task }
    }

    /// Asks for a graceful stop; the returned task ends when the group stopped.
    fn stop(self) -> tokio::task::JoinHandle<Result<(), BusError>> {
        let _ = self.stop.send(());
        self.task
    }
}

/// Five orders placed (and published) before any consumer runs: their event ids, in order.
async fn five_orders(bus: &RabbitMqBus) -> Vec<Uuid> {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    let mut ids = Vec::new();
    for id in ["o-1", "o-2", "o-3", "o-4", "o-5"] {
        let outcome = orders.execute(sample_order(id, "ada")).await.unwrap();
        ids.extend(outcome.events.iter().map(|e| e.event_id));
    }
    ids
}

/// Starts `first` (its first message held in the handler), stops it gracefully while that
/// message is in hand, lets it go, then runs `next` until it handled `rest` messages: the
/// messages each group handled.
async fn stop_then_restart(
    first: &ConsumerGroup,
    next: &ConsumerGroup,
    rest: usize,
) -> (Gate, Gate) {
    let held = Gate::held();
    first.subscribe_fn("send-confirmation", held.handler());
    let running = Running::start(first);
    held.entered().await;
    let stopping = running.stop();
    // The stop reaches the broker while the first message is still in its handler.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release();
    stopping.await.expect("joined").expect("stopped cleanly");

    let open = Gate::open();
    next.subscribe_fn("send-confirmation", open.handler());
    let running = Running::start(next);
    until("the rest handled", || open.handled().len() >= rest).await;
    // Time for a duplicate to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running
        .stop()
        .await
        .expect("joined")
        .expect("stopped cleanly");
    (held, open)
}

/// A group with a prefetch of three is stopped while the first message is in its handler:
/// the first group finishes that one and the two it had prefetched, in order, a new group gets
/// the last two; all five are first deliveries (children of their publish spans), handled
/// once.
#[tokio::test]
async fn a_graceful_stop_handles_what_was_prefetched_so_nothing_comes_back_as_a_retry() {
    let Some(broker) = Broker::open("stop-drain") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let first = broker.group(&bus);
    first.declare().await.expect("the group");
    let published = five_orders(&bus).await;

    let (held, open) = stop_then_restart(&first, &broker.group(&bus), 2).await;
    assert_eq!(
        held.handled(),
        published[..3],
        "the one in hand, then the two prefetched"
    );
    each_handled_once(&published, &held, &open);
    let expected: Vec<_> = published
        .iter()
        .map(|id| (*id, Read::FirstDelivery))
        .collect();
    consume_spans_read(&capture.spans(), &expected);
    broker.clean(&first).await;
}

/// With no drain window the two prefetched messages go back to the queue at once: RabbitMQ
/// hands them to the next consumer `redelivered`, so they read as retries (linked roots,
/// attempt 2); the two it never handed over stay first deliveries.
#[tokio::test]
async fn without_a_drain_window_the_prefetched_messages_come_back_as_redeliveries() {
    let Some(broker) = Broker::open("stop-zero") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let first = broker.group(&bus).drain_on_stop(Duration::ZERO);
    first.declare().await.expect("the group");
    let published = five_orders(&bus).await;

    let (held, open) = stop_then_restart(&first, &broker.group(&bus), 4).await;
    assert_eq!(held.handled(), published[..1], "only the one in hand");
    each_handled_once(&published, &held, &open);
    let read = [
        Read::FirstDelivery,
        Read::Redelivery,
        Read::Redelivery,
        Read::FirstDelivery,
        Read::FirstDelivery,
    ];
    let expected: Vec<_> = published.iter().copied().zip(read).collect();
    consume_spans_read(&capture.spans(), &expected);
    broker.clean(&first).await;
}
