//! The Kafka bus against a real Kafka-API broker, in one run so the ratios compare like with
//! like:
//!
//! - `kafka_relay_throughput`: 20,000 stored events ([`event_count()`]) published by a
//!   [`Relay`] from a fresh checkpoint (tracing off, and on: eventsource's layer, a simple
//!   processor, an exporter that drops the spans), beside rdkafka's `FutureProducer` alone
//!   publishing the same records (`rdkafka_in_flight`: the same settings as the bus,
//!   idempotence and `acks=all`, `linger.ms=1`; the same key, body and headers, encoded
//!   ahead of time; a window of the relay's batch size in flight, each awaited for its
//!   delivery report).
//! - `kafka_consumer_throughput`: as many records (published once, before) consumed from
//!   the beginning by a fresh [`ConsumerGroup`] per iteration, until its handler saw them
//!   all (tracing off, and on), beside rdkafka's `StreamConsumer` alone in a fresh group
//!   with the same guarantees (`rdkafka_at_least_once`: each record's body decoded as a
//!   stored event, then its offset stored, `enable.auto.offset.store=false`, and the stored
//!   offsets committed every second, `auto.commit.interval.ms=1000`, as the group commits
//!   what it settled once per `commit_interval`; a synchronous commit at the end, outside
//!   the timing), and the same reading each record's delivery state and trace context from
//!   its headers as the group does (`rdkafka_at_least_once_reading_headers`). The timing runs from the first record handled to the last: joining a group
//!   takes seconds on some brokers and is the same for both.
//!
//! Throughput reads events per second. Goals (issue 62): the relay at >= 0.8x rdkafka's
//! producer alone, the consumer group at >= 0.9x rdkafka's consumer. Commits per record: one per second of
//! consuming (and one when the group stops), for the group and for rdkafka alike.
//!
//! `EVENTSOURCE_KAFKA_BROKERS=127.0.0.1:9092 cargo bench --bench bus_kafka --features kafka`
//! (about two to three minutes here); the consumers join with the group protocol of
//! `EVENTSOURCE_KAFKA_GROUP_PROTOCOL` (`consumer` unless set), the group and rdkafka alike. Without `EVENTSOURCE_KAFKA_BROKERS` it says so and
//! measures nothing. Each run works under a topic prefix of its own (`es-bench-{uuid}`) and
//! leaves its topics (about 70,000 records) on the broker, for retention to remove.

mod common;
#[path = "../examples/domain/order.rs"]
mod domain;

use eventsource_runtime::kafka::rdkafka;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DroppingExporter, traced_dispatch};
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use domain::{Order, sample_order};
use eventsource_runtime::bus::wire::{self, DeliveryState};
use eventsource_runtime::bus::{BusMessage, HandlerError};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::kafka::{GroupProtocol, KafkaBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Runtime;
use tracing::Dispatch;

/// Stored events per iteration: published by the relay, consumed by a group. 20,000 unless
/// `BUS_KAFKA_EVENTS` says otherwise: counting instructions at two lengths cancels what a
/// run does once (joining the group, its first lag sample) out of the cost of a record.
fn event_count() -> usize {
    static EVENTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *EVENTS.get_or_init(|| {
        std::env::var("BUS_KAFKA_EVENTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(20_000)
    })
}

/// The relay's batch size: the window rdkafka keeps in flight too.
const BATCH: usize = 256;

/// A W3C context, so that rdkafka's records carry headers the size of a traced relay's.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// ---- the broker ----------------------------------------------------------------------------

/// This run's broker and topic prefix.
struct Broker {
    brokers: String,
    prefix: String,
}

impl Broker {
    fn from_env() -> Option<Self> {
        let brokers = std::env::var("EVENTSOURCE_KAFKA_BROKERS").ok()?;
        let run = uuid::Uuid::now_v7().simple();
        Some(Self {
            brokers,
            prefix: format!("es-bench-{run}"),
        })
    }

    /// A bus under this run's prefix and `part` of it.
    fn bus(&self, part: &str) -> KafkaBus {
        KafkaBus::new(&self.brokers)
            .expect("a Kafka address")
            .with_topic_prefix(format!("{}-{part}", self.prefix))
            .with_delivery_timeout(Duration::from_secs(30))
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }

    /// rdkafka's producer with the bus's settings.
    fn producer(&self) -> FutureProducer {
        self.config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "1")
            .create()
            .expect("a producer")
    }

    /// rdkafka's consumer in a group of its own, subscribed to `topic`: at least once,
    /// offsets stored by hand once a record is handled and committed every second; joining
    /// with the group protocol the bus's groups join with (`EVENTSOURCE_KAFKA_GROUP_PROTOCOL`).
    fn consumer(&self, group: &str, topic: &str) -> StreamConsumer {
        let protocol = GroupProtocol::from_environment();
        let mut config = self.config();
        config
            .set("group.id", group)
            .set("group.protocol", protocol.as_str())
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        if protocol == GroupProtocol::Classic {
            config.set("session.timeout.ms", "10000");
        }
        let consumer: StreamConsumer = config.create().expect("a consumer");
        consumer.subscribe(&[topic]).expect("subscribed");
        consumer
    }
}

/// What the bus sends for `event` on `topic`: the key, the body and the headers (with a
/// trace context), encoded ahead of time for rdkafka's contender.
struct Raw {
    key: String,
    body: Vec<u8>,
    headers: OwnedHeaders,
}

fn raw(topic: &str, event: &EventEnvelope) -> Raw {
    let message = BusMessage::new(topic, event.clone());
    let mut headers = wire::text_headers(&message, &DeliveryState::first());
    headers.push(("traceparent", TRACEPARENT.to_owned()));
    let headers = headers
        .iter()
        .fold(OwnedHeaders::new(), |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
    Raw {
        key: event.aggregate_id().to_owned(),
        body: wire::encode(event).expect("JSON"),
        headers,
    }
}

// ---- running -------------------------------------------------------------------------------

/// Runs `work` on `runtime` (under `dispatch` if any).
fn under<T>(runtime: &Runtime, dispatch: Option<&Dispatch>, work: impl Future<Output = T>) -> T {
    match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, || runtime.block_on(work)),
        None => runtime.block_on(work),
    }
}

/// Few, flat samples: an iteration takes from a fraction of a second to a few seconds.
fn configure(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    warm_up: Duration,
    measurement: Duration,
) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(warm_up)
        .measurement_time(measurement);
}

/// [`event_count()`] stored orders, one stream each.
async fn stored_orders() -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    for i in 0..event_count() {
        let order = sample_order(&format!("o-{i}"), "ada");
        orders.execute(order).await.expect("an order");
    }
    store
}

// ---- relay throughput -----------------------------------------------------------------------

fn relay_throughput(c: &mut Criterion, runtime: &Runtime, broker: &Broker) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    eventsource_runtime::telemetry::set_enabled(false);
    let store = runtime.block_on(stored_orders());
    let bus = broker.bus("relay");
    runtime.block_on(bus.declare(["Order"])).expect("the topic");
    let topic = bus.topic_of("Order");
    let events =
        runtime.block_on(async { store.read_all(1, event_count()).await.expect("events") });
    let records: Vec<Raw> = events.iter().map(|e| raw(&topic, e)).collect();
    let bus = Arc::new(bus);
    let store: Arc<dyn EventStore> = Arc::new(store);

    let mut bench = c.benchmark_group("kafka_relay_throughput");
    // Ten iterations of a few tenths of a second each: every record stays on the broker.
    configure(&mut bench, Duration::from_secs(1), Duration::from_secs(3));
    bench.throughput(Throughput::Elements(event_count() as u64));
    for (name, dispatch) in [
        ("relay_tracing_off", None),
        ("relay_tracing_on", Some(&traced)),
    ] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                under(runtime, dispatch, async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let checkpoints = Arc::new(InMemoryCheckpointStore::new());
                        let relay = Relay::new(Arc::clone(&store), checkpoints, bus.clone())
                            .batch_size(BATCH);
                        let published = relay.run_until_caught_up().await.expect("relayed");
                        assert_eq!(published, event_count() as u64);
                    }
                    started.elapsed()
                })
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    let producer = broker.producer();
    bench.bench_function("rdkafka_in_flight", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    for window in records.chunks(BATCH) {
                        let mut pending = Vec::with_capacity(window.len());
                        for record in window {
                            let sent = producer.send_result(
                                FutureRecord::to(&topic)
                                    .key(&record.key)
                                    .payload(&record.body)
                                    .headers(record.headers.clone()),
                            );
                            pending.push(sent.map_err(|(e, _)| e).expect("enqueued"));
                        }
                        for delivery in pending {
                            delivery.await.expect("a report").expect("delivered");
                        }
                    }
                }
                started.elapsed()
            })
        });
    });
    bench.finish();
}

// ---- consumer throughput --------------------------------------------------------------------

/// How far a consumer got: records handled, and when the first and the last were.
#[derive(Default)]
struct Progress {
    handled: AtomicUsize,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn record(&self) {
        let now = Instant::now();
        let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            *self.first.lock().expect("first") = Some(now);
        }
        if n == event_count() {
            *self.last.lock().expect("last") = Some(now);
        }
    }

    /// Waits (up to a minute) until every record was handled; the time from the first to
    /// the last.
    async fn all_handled(&self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(last) = *self.last.lock().expect("last") {
                let first = self.first.lock().expect("first").expect("a first record");
                return last - first;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {} records handled within a minute",
                self.handled.load(Ordering::SeqCst),
                event_count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// One fresh consumer group reading every record of `bus`'s orders topic: the time from
/// its first record handled to its last.
async fn consume_with_group(bus: &KafkaBus, name: &str) -> Duration {
    let group = bus
        .consumer_group(name)
        .bind("Order.*")
        .retry_delays([Duration::from_secs(1)]);
    let progress = Arc::new(Progress::default());
    {
        let progress = Arc::clone(&progress);
        group.subscribe_fn("count", move |_event| {
            progress.record();
            async { Ok::<(), HandlerError>(()) }
        });
    }
    group.declare().await.expect("the group's topics");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consuming = {
        let group = group.clone();
        tokio::spawn(async move { group.run(async { drop(stopped.await) }).await })
    };
    let took = progress.all_handled().await;
    let _ = stop.send(());
    consuming.await.expect("joined").expect("stopped");
    took
}

/// rdkafka alone in a fresh group: each record decoded, then its offset stored for the
/// next commit (every second).
/// With `read_headers`, each record's delivery state and trace context are read from its
/// headers too, as a consumer that honours retries (the attempt, the handlers that failed)
/// must: librdkafka parses a record's headers when first asked.
async fn consume_with_rdkafka(
    broker: &Broker,
    group: &str,
    topic: &str,
    read_headers: bool,
) -> Duration {
    let consumer = broker.consumer(group, topic);
    let progress = Progress::default();
    while progress.handled.load(Ordering::SeqCst) < event_count() {
        let record = consumer.recv().await.expect("a record");
        if read_headers {
            let headers = record.headers();
            let pairs = headers
                .iter()
                .flat_map(|headers| headers.iter())
                .filter_map(|header| Some((header.key, header.value?)));
            std::hint::black_box(wire::read_text_headers(pairs));
        }
        let event = wire::decode(record.payload().unwrap_or_default()).expect("a stored event");
        std::hint::black_box(event);
        progress.record();
        consumer
            .store_offset_from_message(&record)
            .expect("offset stored");
    }
    let took = progress.all_handled().await;
    let consumer = Arc::new(consumer);
    let closing = Arc::clone(&consumer);
    tokio::task::spawn_blocking(move || {
        let _ = closing.commit_consumer_state(CommitMode::Sync);
        closing.unsubscribe();
    })
    .await
    .expect("closed");
    took
}

fn consumer_throughput(c: &mut Criterion, runtime: &Runtime, broker: &Broker) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    eventsource_runtime::telemetry::set_enabled(false);
    let bus = broker.bus("consume");
    let topic = bus.topic_of("Order");
    // The records every iteration reads: published once, by the relay.
    runtime.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(stored_orders().await);
        let checkpoints = Arc::new(InMemoryCheckpointStore::new());
        let relay = Relay::new(store, checkpoints, Arc::new(bus.clone())).batch_size(BATCH);
        let published = relay.run_until_caught_up().await.expect("relayed");
        assert_eq!(published, event_count() as u64);
    });
    let groups = AtomicUsize::new(0);
    let fresh = |kind: &str| format!("{kind}-{}", groups.fetch_add(1, Ordering::SeqCst));

    let mut bench = c.benchmark_group("kafka_consumer_throughput");
    // One iteration per sample: each is a group joining, then reading every record.
    configure(
        &mut bench,
        Duration::from_millis(1),
        Duration::from_millis(10),
    );
    bench.throughput(Throughput::Elements(event_count() as u64));
    for (name, dispatch) in [
        ("group_tracing_off", None),
        ("group_tracing_on", Some(&traced)),
    ] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                under(runtime, dispatch, async {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        took += consume_with_group(&bus, &fresh("group")).await;
                    }
                    took
                })
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    for (name, read_headers) in [
        ("rdkafka_at_least_once", false),
        ("rdkafka_at_least_once_reading_headers", true),
    ] {
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let group = format!("{}-{}", bus.topic_prefix(), fresh("rdkafka"));
                        took += consume_with_rdkafka(broker, &group, &topic, read_headers).await;
                    }
                    took
                })
            });
        });
    }
    bench.finish();
}

fn bus_kafka(c: &mut Criterion) {
    let Some(broker) = Broker::from_env() else {
        println!("bus_kafka bench: EVENTSOURCE_KAFKA_BROKERS not set; nothing measured");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The consumers first, on a broker that holds the fewest records.
    consumer_throughput(c, &runtime, &broker);
    relay_throughput(c, &runtime, &broker);
}

criterion_group!(benches, bus_kafka);
criterion_main!(benches);
