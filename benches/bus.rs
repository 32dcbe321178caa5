//! The RabbitMQ bus against a real broker, in one run so the ratios compare like with like:
//!
//! - `bus_round_trip`: one stored event published (confirmed) and handled by a consumer
//!   group's handler, per iteration: `tracing_off` (`telemetry::set_enabled(false)`),
//!   `tracing_on` (eventsource's layer, a simple processor, an exporter that drops the
//!   spans: publish, consume and handle spans, the context in the headers) and
//!   `lapin_direct` (the same body published with confirms and consumed with lapin alone,
//!   acked on arrival);
//! - `relay_throughput`: [`EVENTS`] stored events published by a [`Relay`] from a fresh
//!   checkpoint (tracing off, and on), beside lapin publishing the same messages with
//!   confirms directly: a window of the relay's batch size in flight (`lapin_in_flight`),
//!   and one at a time (`lapin_one_by_one`). Throughput reads events per second.
//!
//! Goal (issue 9): the relay at >= 0.5x lapin's confirmed publishing.
//!
//! `EVENTSOURCE_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo bench --bench bus
//! --features rabbitmq` (about two minutes here). Without `EVENTSOURCE_AMQP_URL` it says so
//! and measures nothing. Each run declares an exchange and queues of its own and deletes
//! them at the end.

mod common;
#[path = "../examples/domain/order.rs"]
mod domain;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DroppingExporter, traced_dispatch};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Order, sample_order};
use eventsource_runtime::bus::{EventBus, HandlerError};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use eventsource_runtime::relay::Relay;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tracing::Dispatch;

/// Stored events the relay publishes per iteration.
const EVENTS: usize = 500;

/// The relay's batch size: the window lapin keeps in flight too.
const BATCH: usize = 256;

// ---- the broker ----------------------------------------------------------------------------

/// This run's exchanges and queues on the broker at `url`.
struct Broker {
    url: String,
    /// For the round trip: a consumer group bound to everything.
    round_trip: String,
    /// For the relay and lapin's publishing: a capped queue nobody consumes.
    relay: String,
    /// The queues declared, deleted by [`Broker::clean`].
    queues: std::sync::Mutex<Vec<String>>,
}

impl Broker {
    fn from_env() -> Option<Self> {
        let url = std::env::var("EVENTSOURCE_AMQP_URL").ok()?;
        let run = uuid::Uuid::now_v7().simple();
        Some(Self {
            url,
            round_trip: format!("es-bench-round-trip-{run}"),
            relay: format!("es-bench-relay-{run}"),
            queues: std::sync::Mutex::default(),
        })
    }

    async fn connection(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("the broker")
    }

    /// A channel with publisher confirms on.
    async fn confirming(&self, connection: &Connection) -> Channel {
        let channel = connection.create_channel().await.expect("a channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        channel
    }

    /// A durable topic exchange and a durable queue bound to all of it (capped so the
    /// relay's messages do not pile up: the oldest are dropped).
    async fn declare(&self, channel: &Channel, exchange: &str, queue: &str, cap: Option<i64>) {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .expect("the exchange");
        let mut arguments = FieldTable::default();
        if let Some(cap) = cap {
            arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(cap));
        }
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.into(), options, arguments)
            .await
            .expect("the queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("the binding");
        self.queues.lock().expect("queues").push(queue.to_owned());
    }

    async fn clean(&self) {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.expect("a channel");
        let queues = self.queues.lock().expect("queues").clone();
        for queue in queues {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        let raw = format!("{}.raw", self.round_trip);
        for exchange in [&self.round_trip, &raw, &self.relay] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = connection.close(200, "bench done".into()).await;
    }
}

/// Publishes `body` on `channel` (persistent, mandatory) and returns the pending
/// confirmation.
async fn send(channel: &Channel, exchange: &str, body: &[u8]) -> lapin::PublisherConfirm {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    channel
        .basic_publish(
            exchange.into(),
            "Order.OrderPlaced".into(),
            options,
            body,
            properties,
        )
        .await
        .expect("published")
}

async fn confirm(pending: lapin::PublisherConfirm) {
    match pending.await.expect("a confirmation") {
        Confirmation::Ack(None) => {}
        other => panic!("not confirmed: {other:?}"),
    }
}

/// The message body the bus sends for `event` (the stored event as JSON), encoded ahead of
/// time for lapin's contenders.
fn body(event: &EventEnvelope) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_id": event.event_id,
        "stream": { "aggregate_type": event.aggregate_type(), "aggregate_id": event.aggregate_id() },
        "version": event.version,
        "position": event.position,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "timestamp": event.timestamp,
        "payload": event.payload,
        "metadata": event.metadata,
    }))
    .expect("JSON")
}

// ---- running -------------------------------------------------------------------------------

/// Runs `iters` iterations of `work` on `runtime` (under `dispatch` if any) and returns the
/// time they took.
fn timed<F, Fut>(runtime: &Runtime, dispatch: Option<&Dispatch>, iters: u64, work: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let run = || {
        runtime.block_on(async {
            let started = Instant::now();
            for _ in 0..iters {
                work().await;
            }
            started.elapsed()
        })
    };
    match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, run),
        None => run(),
    }
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
}

/// One stored order event (the message the round trip sends).
async fn one_event() -> EventEnvelope {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let outcome = orders.execute(sample_order("o-1", "ada")).await;
    outcome.expect("an order").events.remove(0)
}

// ---- the round trip -------------------------------------------------------------------------

fn bus_round_trip(c: &mut Criterion, runtime: &Runtime, broker: &Broker) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    let event = runtime.block_on(one_event());
    let bus = RabbitMqBus::new(&broker.url)
        .expect("an AMQP URL")
        .with_exchange(&broker.round_trip);
    let group = bus.consumer_group("bench");
    broker.queues.lock().expect("queues").extend(
        [
            group.queue().to_owned(),
            group.dead_letters().queue().to_owned(),
        ]
        .into_iter()
        .chain(
            eventsource_runtime::rabbitmq::DEFAULT_RETRY_DELAYS
                .iter()
                .map(|delay| format!("{}.retry.{}ms", group.queue(), delay.as_millis())),
        ),
    );
    let (handled, arrivals) = mpsc::unbounded_channel::<()>();
    // Locked by one iteration at a time (uncontended).
    let arrivals = tokio::sync::Mutex::new(arrivals);
    group.subscribe_fn("count", move |_| {
        let _ = handled.send(());
        async { Ok::<(), HandlerError>(()) }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime
        .block_on(group.declare())
        .expect("the group's queues");
    let consuming = {
        let group = group.clone();
        runtime.spawn(async move {
            let _ = group.run(async { drop(stopped.await) }).await;
        })
    };

    let mut bench = c.benchmark_group("bus_round_trip");
    configure(&mut bench);
    bench.throughput(Throughput::Elements(1));
    for (name, dispatch) in [("tracing_off", None), ("tracing_on", Some(&traced))] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        let (bus, event, arrivals) = (&bus, &event, &arrivals);
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(runtime, dispatch, iters, || async {
                    bus.publish(std::slice::from_ref(event))
                        .await
                        .expect("published");
                    arrivals.lock().await.recv().await.expect("handled");
                })
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    runtime.block_on(async {
        let _ = stop.send(());
        let _ = consuming.await;
    });

    // lapin alone: the same body, confirmed, consumed and acked.
    let body = body(&event);
    let (channel, consumer, _connection) = runtime.block_on(async {
        let connection = broker.connection().await;
        let channel = broker.confirming(&connection).await;
        let queue = format!("{}.raw", broker.round_trip);
        // The group's queue is bound to the exchange too, and nobody consumes it now: a
        // separate exchange keeps it out of the way.
        let exchange = format!("{}.raw", broker.round_trip);
        broker.declare(&channel, &exchange, &queue, None).await;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "bench".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("a consumer");
        (channel, consumer, connection)
    });
    let exchange = format!("{}.raw", broker.round_trip);
    let consumer = tokio::sync::Mutex::new(consumer);
    bench.bench_function("lapin_direct", |b| {
        b.iter_custom(|iters| {
            timed(runtime, None, iters, || async {
                confirm(send(&channel, &exchange, &body).await).await;
                let delivery = consumer.lock().await.next().await;
                let delivery = delivery.expect("a delivery").expect("delivered");
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("acked");
            })
        });
    });
    bench.finish();
}

// ---- relay throughput -----------------------------------------------------------------------

fn relay_throughput(c: &mut Criterion, runtime: &Runtime, broker: &Broker) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    eventsource_runtime::telemetry::set_enabled(false);
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let (channel, _connection) = runtime.block_on(async {
        for i in 0..EVENTS {
            let order = sample_order(&format!("o-{i}"), "ada");
            orders.execute(order).await.expect("an order");
        }
        let connection = broker.connection().await;
        let channel = broker.confirming(&connection).await;
        let queue = format!("{}.sink", broker.relay);
        broker
            .declare(&channel, &broker.relay, &queue, Some(10_000))
            .await;
        (channel, connection)
    });
    let events = runtime.block_on(async { store.read_all(1, EVENTS).await.expect("events") });
    let bodies: Vec<Vec<u8>> = events.iter().map(body).collect();
    let bus = Arc::new(
        RabbitMqBus::new(&broker.url)
            .expect("an AMQP URL")
            .with_exchange(&broker.relay),
    );
    let store: Arc<dyn EventStore> = Arc::new(store);

    let mut bench = c.benchmark_group("relay_throughput");
    configure(&mut bench);
    bench.throughput(Throughput::Elements(EVENTS as u64));
    for (name, dispatch) in [
        ("relay_tracing_off", None),
        ("relay_tracing_on", Some(&traced)),
    ] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(runtime, dispatch, iters, || async {
                    let checkpoints = Arc::new(InMemoryCheckpointStore::new());
                    let relay =
                        Relay::new(Arc::clone(&store), checkpoints, bus.clone()).batch_size(BATCH);
                    let published = relay.run_until_caught_up().await.expect("relayed");
                    assert_eq!(published, EVENTS as u64);
                })
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    bench.bench_function("lapin_in_flight", |b| {
        b.iter_custom(|iters| {
            timed(runtime, None, iters, || async {
                for window in bodies.chunks(BATCH) {
                    let mut pending = Vec::with_capacity(window.len());
                    for body in window {
                        pending.push(send(&channel, &broker.relay, body).await);
                    }
                    for confirmation in pending {
                        confirm(confirmation).await;
                    }
                }
            })
        });
    });
    bench.bench_function("lapin_one_by_one", |b| {
        b.iter_custom(|iters| {
            timed(runtime, None, iters, || async {
                for body in &bodies {
                    confirm(send(&channel, &broker.relay, body).await).await;
                }
            })
        });
    });
    bench.finish();
}

fn bus(c: &mut Criterion) {
    let Some(broker) = Broker::from_env() else {
        println!("bus bench: EVENTSOURCE_AMQP_URL not set; nothing measured");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    bus_round_trip(c, &runtime, &broker);
    relay_throughput(c, &runtime, &broker);
    runtime.block_on(broker.clean());
}

criterion_group!(benches, bus);
criterion_main!(benches);
