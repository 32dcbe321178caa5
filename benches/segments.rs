//! A projection split into segments (issue 47, part 6).
//!
//! - `io_bound/{1,2,4}_workers`: 2,000 events of 1,000 orders, a projection whose handler waits
//!   1 ms per event (as a call to another service would), split into 16 segments over 1, 2
//!   or 4 workers. Each worker is a `SegmentedRunner` with its own projection value (its
//!   handler calls one at a time, as in a process of its own), all sharing the in-memory
//!   store, checkpoints and claims. Timed: from the workers' start until every event was
//!   handled (the workers' first rebalance, which only joins, included). Goals: 4 workers
//!   >= 3.5x one worker, 2 workers >= 1.8x.
//! - `cpu_light/{whole,split_1,split_16}`: 20,000 events of 200 orders, a projection that counts them,
//!   one worker: today's `ProjectionRunner` (`whole`), and `SegmentedRunner` over 1 and 16
//!   segments. Goal: 16 segments cost <= 10% over one. On the in-memory store, and on
//!   PostgreSQL (`DATABASE_URL`, a fresh schema dropped at the end) where each segment reads
//!   its rows through the index of its count. The split cases include the worker's start
//!   (its first rebalance only joins: 10 ms here), the whole runner's does not: compare
//!   `split_16` with `split_1`.
//!
//! The bench prints each case's median and its ratio to its group's first case.
//!
//! `cargo bench --bench segments` (`DATABASE_URL=postgres://... ` for the PostgreSQL cases).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentClaims};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{
    EventStore, ExpectedVersion, InMemoryEventStore, WithStoreTelemetry,
};
use eventsource_runtime::telemetry::toggles;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Counts the events it handled (over all the workers of one run), waiting `delay` each.
struct Counting {
    name: String,
    handled: Arc<AtomicUsize>,
    target: usize,
    done: Arc<Notify>,
    delay: Duration,
}

#[eventsource_runtime::async_trait]
impl Projection for Counting {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
        Ok(())
    }
}

/// `events` events over `orders` orders, appended 100 at a time.
async fn fill(store: &dyn EventStore, orders: usize, events: usize) {
    let per_order = events / orders;
    for order in 0..orders {
        let stream = StreamId::new("Order", format!("o-{order}"));
        let batch = (0..per_order)
            .map(|n| NewEvent::new("Progressed", 1, serde_json::json!({ "n": n })))
            .collect();
        store
            .append(&stream, ExpectedVersion::NoStream, batch)
            .await
            .unwrap();
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// How a run reads the log.
#[derive(Clone, Copy)]
enum Split {
    /// Today's runner, the whole log.
    Whole,
    /// `SegmentedRunner` over this many segments, on `workers` workers.
    Segments { count: u32, workers: usize },
}

/// One run: a fresh projection name (its checkpoints from 0), the workers started, timed
/// until every one of `events` events was handled.
async fn run_once(
    store: Arc<dyn EventStore>,
    split: Split,
    events: usize,
    delay: Duration,
) -> Duration {
    let name = format!("Counting{}", RUN.fetch_add(1, Ordering::Relaxed));
    let handled = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let checkpoints = Arc::new(InMemoryCheckpointStore::new());
    let projection = || Counting {
        name: name.clone(),
        handled: Arc::clone(&handled),
        target: events,
        done: Arc::clone(&done),
        delay,
    };
    let start = Instant::now();
    match split {
        Split::Whole => {
            let runner = ProjectionRunner::new(Arc::clone(&store), checkpoints, projection());
            runner.run_until_caught_up().await.unwrap();
        }
        Split::Segments { count, workers } => {
            let claims: Arc<dyn SegmentClaims> = Arc::new(InMemorySegmentClaims::new());
            let mut stops = Vec::new();
            let mut tasks = Vec::new();
            for n in 0..workers {
                let runner =
                    ProjectionRunner::new(Arc::clone(&store), checkpoints.clone(), projection())
                        .segmented(Arc::clone(&claims), count)
                        .rebalance_interval(Duration::from_millis(10))
                        .worker_name(format!("w{n}"));
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                stops.push(stop);
                tasks.push(tokio::spawn(async move { runner.run(stopped).await }));
            }
            done.notified().await;
            let elapsed = start.elapsed();
            for stop in stops {
                let _ = stop.send(());
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            assert_eq!(handled.load(Ordering::Relaxed), events);
            return elapsed;
        }
    }
    assert_eq!(handled.load(Ordering::Relaxed), events);
    start.elapsed()
}

/// What a group's runs handle: the store's events, each taking `delay`.
struct Workload {
    store: Arc<dyn EventStore>,
    events: usize,
    delay: Duration,
}

/// Criterion's loop over `run_once`, and each case's median kept for the ratios.
fn case(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    id: &str,
    work: &Workload,
    split: Split,
    medians: &mut Vec<(String, f64)>,
) {
    let mut times = Vec::new();
    group.bench_function(id, |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let store = Arc::clone(&work.store);
                let took = runtime.block_on(run_once(store, split, work.events, work.delay));
                times.push(took.as_secs_f64());
                total += took;
            }
            total
        });
    });
    // Nothing when criterion's filter left the case out.
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        medians.push((id.to_owned(), times[times.len() / 2]));
    }
}

fn report(group: &str, medians: &[(String, f64)], events: usize) {
    let Some((_, base)) = medians.first() else {
        return;
    };
    println!(
        "\n{group}: median, events/s, speed against {}",
        medians[0].0
    );
    for (id, median) in medians {
        let per_second = events as f64 / median;
        println!(
            "  {id:<20} {:>9.1} ms {per_second:>10.0}/s  {:.2}x",
            median * 1e3,
            base / median
        );
    }
}

fn segments(c: &mut Criterion) {
    toggles::set_enabled(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // I/O bound: 1, 2 and 4 workers over 16 segments.
    let memory: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new().enable_tracing(false));
    runtime.block_on(fill(&*memory, 1_000, 2_000));
    let mut group = c.benchmark_group("segments/io_bound");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let mut medians = Vec::new();
    let work = Workload {
        store: memory,
        events: 2_000,
        delay: Duration::from_millis(1),
    };
    for workers in [1, 2, 4] {
        let split = Split::Segments { count: 16, workers };
        let id = format!("{workers}_workers");
        case(&mut group, &runtime, &id, &work, split, &mut medians);
    }
    group.finish();
    report("io_bound (1 ms per event, 16 segments)", &medians, 2_000);

    // CPU light, one worker: the whole log, 1 segment, 16 segments.
    let light: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new().enable_tracing(false));
    runtime.block_on(fill(&*light, 200, 20_000));
    cpu_light(c, &runtime, "memory", &light);

    if let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let schema = format!("bench_segments_{}", std::process::id());
        let store = runtime.block_on(async {
            let store = PostgresEventStore::connect(&url)
                .await
                .unwrap()
                .with_schema(&schema)
                .unwrap()
                .enable_tracing(false);
            store.migrate().await.unwrap();
            fill(&store, 200, 20_000).await;
            store.prepare_segments(16).await.unwrap();
            store
        });
        let pool = store.pool().clone();
        let postgres: Arc<dyn EventStore> = Arc::new(store);
        cpu_light(c, &runtime, "postgres", &postgres);
        runtime.block_on(async {
            sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
        });
    }
}

fn cpu_light(c: &mut Criterion, runtime: &Runtime, database: &str, store: &Arc<dyn EventStore>) {
    let mut group = c.benchmark_group(format!("segments/cpu_light/{database}"));
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let mut medians = Vec::new();
    let cases = [
        ("whole", Split::Whole),
        (
            "split_1",
            Split::Segments {
                count: 1,
                workers: 1,
            },
        ),
        (
            "split_16",
            Split::Segments {
                count: 16,
                workers: 1,
            },
        ),
    ];
    let work = Workload {
        store: Arc::clone(store),
        events: 20_000,
        delay: Duration::ZERO,
    };
    for (id, split) in cases {
        case(&mut group, runtime, id, &work, split, &mut medians);
    }
    group.finish();
    report(
        &format!("cpu_light on {database} (20,000 events, one worker)"),
        &medians,
        20_000,
    );
}

criterion_group!(benches, segments);
criterion_main!(benches);
