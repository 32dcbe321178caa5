//! The relay split into segments (issue 47): 4 `SegmentedRelay` workers against 1, to a
//! real RabbitMQ, the store and the claims on PostgreSQL.
//!
//! - `relay_segments/{1,4}_workers`: [`EVENTS`] events of [`EVENTS`] / 2 orders, stored
//!   beforehand in a fresh schema, published from a fresh relay name (its checkpoints from
//!   0) by a relay split into [`SEGMENTS`] segments over 1 or 4 workers in this process,
//!   each worker with its own bus (its own connection and confirming channel), the claims
//!   in PostgreSQL (`PostgresCheckpointStore`), batches of the default 256. Timed: from the
//!   workers' start (their joining rebalance included, 20 ms here) until every segment's
//!   checkpoint reached its last event, that is until the broker confirmed every event
//!   (polled every 5 ms). Telemetry off.
//!
//! The bench prints each case's median, its events per second and its speed against one
//! worker. The broker routes every message to a queue of the run's own, capped at 10,000
//! (the oldest dropped), deleted at the end with the exchange; the schema is dropped too.
//!
//! `DATABASE_URL=postgres://... EVENTSOURCE_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
//! cargo bench --bench relay_segments --features rabbitmq`. Without either variable it says
//! so and measures nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::{PostgresCheckpointStore, PostgresEventStore};
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_runtime::projection::segments::SegmentClaims;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use eventsource_runtime::relay::Relay;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore, ExpectedVersion, Segment, WithStoreTelemetry};
use eventsource_runtime::telemetry::toggles;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::runtime::Runtime;

/// Stored events published per iteration (two per order).
const EVENTS: usize = 4_000;
const SEGMENTS: u32 = 16;

static RUN: AtomicU64 = AtomicU64::new(0);

/// What every run shares: the store, the claims, one bus per worker, the last position of
/// each segment.
struct Setup {
    store: PostgresEventStore,
    checkpoints: PostgresCheckpointStore,
    buses: Vec<RabbitMqBus>,
    last: Vec<(Segment, u64)>,
}

/// `EVENTS` events over `EVENTS / 2` orders in `store`, and the last position of each
/// segment (as the store splits them).
async fn fill(store: &PostgresEventStore) -> Vec<(Segment, u64)> {
    for order in 0..EVENTS / 2 {
        let stream = StreamId::new("Order", format!("o-{order}"));
        let events = (0..2)
            .map(|n| NewEvent::new("Progressed", 1, serde_json::json!({ "n": n })))
            .collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .expect("appended");
    }
    store.prepare_segments(SEGMENTS).await.expect("the index");
    let mut last = Vec::new();
    for segment in Segment::all(SEGMENTS) {
        let events = store.read_segment(segment, 0, usize::MAX).await.unwrap();
        last.push((segment, events.last().map_or(0, |e| e.position)));
    }
    last
}

/// The exchange, and a capped queue bound to all of it (the relay's messages are routable,
/// and do not pile up).
async fn declare(url: &str, exchange: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let kind = lapin::ExchangeKind::Topic;
    channel
        .exchange_declare(exchange.into(), kind, durable, FieldTable::default())
        .await
        .expect("the exchange");
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(10_000));
    let queue = format!("{exchange}.sink");
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), options, arguments)
        .await
        .expect("the queue");
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            bind,
            FieldTable::default(),
        )
        .await
        .expect("the binding");
    let _ = connection.close(200, "declared".into()).await;
}

async fn clean(url: &str, exchange: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    let queue = format!("{exchange}.sink");
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
    let _ = connection.close(200, "bench done".into()).await;
}

/// One run: a fresh relay name, `workers` workers started, timed until every segment's
/// checkpoint reached its last event.
async fn run_once(setup: &Setup, workers: usize) -> Duration {
    let name = format!("relay-bench-{}", RUN.fetch_add(1, Ordering::Relaxed));
    let claims: Arc<dyn SegmentClaims> = Arc::new(setup.checkpoints.clone());
    let start = Instant::now();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for (n, bus) in setup.buses.iter().take(workers).enumerate() {
        let worker = Relay::new(
            Arc::new(setup.store.clone()),
            Arc::new(setup.checkpoints.clone()),
            Arc::new(bus.clone()),
        )
        .named(name.clone())
        .segmented(Arc::clone(&claims), SEGMENTS)
        .rebalance_interval(Duration::from_millis(20))
        .worker_name(format!("w{n}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(async move { worker.run(stopped).await }));
    }
    'poll: loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        for (segment, last) in &setup.last {
            let checkpoint = setup
                .checkpoints
                .load(&segment.checkpoint_name(&name))
                .await;
            if checkpoint.expect("a checkpoint") < *last {
                continue 'poll;
            }
        }
        break;
    }
    let elapsed = start.elapsed();
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await.expect("a worker").expect("relayed");
    }
    elapsed
}

fn relay_segments(c: &mut Criterion) {
    let (Some(database), Some(broker)) =
        (variable("DATABASE_URL"), variable("EVENTSOURCE_AMQP_URL"))
    else {
        println!(
            "relay_segments bench: DATABASE_URL and EVENTSOURCE_AMQP_URL are needed; nothing \
             measured"
        );
        return;
    };
    toggles::set_enabled(false);
    let runtime: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let schema = format!("bench_relay_segments_{}", std::process::id());
    let exchange = format!("es-bench-relay-segments-{}", uuid::Uuid::now_v7().simple());
    let setup = runtime.block_on(async {
        let store = PostgresEventStore::connect(&database)
            .await
            .expect("the database")
            .with_schema(&schema)
            .expect("a schema name")
            .enable_tracing(false);
        store.migrate().await.expect("migrated");
        let last = fill(&store).await;
        declare(&broker, &exchange).await;
        let mut buses = Vec::new();
        for _ in 0..4 {
            let bus = RabbitMqBus::new(&broker)
                .expect("an AMQP URL")
                .with_exchange(&exchange);
            bus.declare().await.expect("connected");
            buses.push(bus);
        }
        Setup {
            checkpoints: store.checkpoint_store(),
            store,
            buses,
            last,
        }
    });

    let mut group = c.benchmark_group("relay_segments");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .throughput(Throughput::Elements(EVENTS as u64));
    let mut medians: Vec<(String, f64)> = Vec::new();
    for workers in [1, 4] {
        let id = format!("{workers}_workers");
        let mut times = Vec::new();
        group.bench_function(&id, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let took = runtime.block_on(run_once(&setup, workers));
                    times.push(took.as_secs_f64());
                    total += took;
                }
                total
            });
        });
        if !times.is_empty() {
            times.sort_by(f64::total_cmp);
            medians.push((id, times[times.len() / 2]));
        }
    }
    group.finish();
    if let Some((_, base)) = medians.first().cloned() {
        println!(
            "\nrelay_segments ({EVENTS} events, {SEGMENTS} segments, RabbitMQ): median, events/s, speed against {}",
            medians[0].0
        );
        for (id, median) in &medians {
            println!(
                "  {id:<12} {:>9.1} ms {:>10.0}/s  {:.2}x",
                median * 1e3,
                EVENTS as f64 / median,
                base / median
            );
        }
    }
    runtime.block_on(async {
        clean(&broker, &exchange).await;
        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(setup.store.pool())
            .await
            .expect("the schema dropped");
    });
}

/// An environment variable that is set and not blank.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

criterion_group!(benches, relay_segments);
criterion_main!(benches);
