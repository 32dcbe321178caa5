//! Event store throughput, one group per operation with one function per store:
//!
//! - `append_1_event`: appends of a single event, each to the growing stream of its sample
//!   (`ExpectedVersion::Exact` with the version the previous append returned);
//! - `append_100_events`: the same with 100 events per append;
//! - `replay_10k`: `load(stream, 1)` of a stream of 10,000 events.
//!
//! Throughput is in events (`Throughput::Elements`): for the 100-event appends, divide by
//! 100 for appends per second.
//!
//! Stores: in memory (a fresh store per sample, so the log does not grow without bound),
//! SQLite (a database file in a temporary directory, removed at the end) and PostgreSQL
//! from `DATABASE_URL`, in a fresh schema dropped at the end (skipped with a note when
//! `DATABASE_URL` is unset). Every store has its spans switched off
//! (`enable_tracing(false)`), so this measures the stores, not the telemetry. Events are
//! built before each sample's clock starts.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench store`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{
    EventStore, ExpectedVersion, InMemoryEventStore, WithStoreTelemetry,
};
use serde_json::json;
use tokio::runtime::Runtime;

/// Events of the replayed stream.
const REPLAY_EVENTS: u64 = 10_000;
/// Events per append when filling the replayed stream.
const FILL_BATCH: u64 = 100;

// ---- setup ---------------------------------------------------------------------------------

/// A name no earlier run used: process id, a counter, and the time.
fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `n`th event: a small payload, like a typical domain event.
fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "AmountDeposited",
        1,
        json!({ "n": n, "amount": 1250, "currency": "EUR", "reference": "bench" }),
    )
}

fn batch(first: u64, len: u64) -> Vec<NewEvent> {
    (first..first + len).map(event).collect()
}

/// A SQLite store on a file in a directory of its own.
struct Sqlite {
    store: SqliteEventStore,
    dir: PathBuf,
}

impl Sqlite {
    async fn open() -> Self {
        let dir = std::env::temp_dir().join(unique("eventsource_bench_store"));
        std::fs::create_dir_all(&dir).expect("create the SQLite bench directory");
        let path = dir.join("events.db");
        let store = SqliteEventStore::connect(path.to_str().expect("a UTF-8 temp path"))
            .await
            .expect("open the SQLite bench database")
            .enable_tracing(false);
        store
            .migrate()
            .await
            .expect("migrate the SQLite bench database");
        Self { store, dir }
    }

    async fn close(self) {
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL store in a schema of its own.
struct Postgres {
    store: PostgresEventStore,
}

impl Postgres {
    /// `None`, with a note on stderr, when `DATABASE_URL` is unset.
    async fn open() -> Option<Self> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                eprintln!(
                    "store bench: PostgreSQL skipped: DATABASE_URL not set \
                     (e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
                );
                return None;
            }
        };
        let schema = unique("es_bench");
        let store = PostgresEventStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("store bench: cannot connect to DATABASE_URL: {e}"))
            .with_schema(&schema)
            .expect("a valid schema name")
            .enable_tracing(false);
        store
            .migrate()
            .await
            .expect("migrate the PostgreSQL bench schema");
        eprintln!("store bench: PostgreSQL in schema {schema} (dropped at the end)");
        Some(Self { store })
    }

    async fn close(self) {
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.store.schema());
        if let Err(e) = sqlx::raw_sql(&drop).execute(self.store.pool()).await {
            eprintln!(
                "store bench: could not drop schema {}: {e}",
                self.store.schema()
            );
        }
        self.store.close().await;
    }
}

// ---- measurements --------------------------------------------------------------------------

/// Appends of `per_append` events, each sample to a new stream of the store `store_for`
/// gives, growing it with `ExpectedVersion::Exact`.
fn bench_appends<S: EventStore>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    per_append: u64,
    mut store_for_sample: impl FnMut() -> S,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let store = store_for_sample();
            let stream = StreamId::new("BenchAppend", unique(name));
            let batches: Vec<Vec<NewEvent>> = (0..iters)
                .map(|i| batch(i * per_append, per_append))
                .collect();
            rt.block_on(async {
                let start = Instant::now();
                let mut version = 0;
                for events in batches {
                    let appended = store
                        .append(&stream, ExpectedVersion::Exact(version), events)
                        .await
                        .expect("append");
                    version = appended.version;
                }
                let elapsed = start.elapsed();
                assert_eq!(version, iters * per_append);
                elapsed
            })
        });
    });
}

/// Fills a stream of [`REPLAY_EVENTS`] events in `store` and benches loading it whole.
fn bench_replay<S: EventStore>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    store: &S,
) {
    let stream = StreamId::new("BenchReplay", unique(name));
    rt.block_on(async {
        for first in (0..REPLAY_EVENTS).step_by(FILL_BATCH as usize) {
            store
                .append(
                    &stream,
                    ExpectedVersion::Exact(first),
                    batch(first, FILL_BATCH),
                )
                .await
                .expect("fill the replayed stream");
        }
        let loaded = store.load(&stream, 1).await.expect("load");
        assert_eq!(loaded.len() as u64, REPLAY_EVENTS);
    });
    group.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(store.load(black_box(&stream), 1))
                .expect("load")
        });
    });
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sqlite = rt.block_on(Sqlite::open());
    let postgres = rt.block_on(Postgres::open());
    let memory = || InMemoryEventStore::new().enable_tracing(false);

    for per_append in [1, 100] {
        let group_name = if per_append == 1 {
            "append_1_event"
        } else {
            "append_100_events"
        };
        let mut group = c.benchmark_group(group_name);
        group
            .throughput(Throughput::Elements(per_append))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        bench_appends(&mut group, &rt, "in_memory", per_append, memory);
        bench_appends(&mut group, &rt, "sqlite", per_append, || {
            sqlite.store.clone()
        });
        if let Some(pg) = &postgres {
            bench_appends(&mut group, &rt, "postgres", per_append, || pg.store.clone());
        }
        group.finish();
    }

    let mut group = c.benchmark_group("replay_10k");
    group
        .throughput(Throughput::Elements(REPLAY_EVENTS))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    bench_replay(&mut group, &rt, "in_memory", &memory());
    bench_replay(&mut group, &rt, "sqlite", &sqlite.store);
    if let Some(pg) = &postgres {
        bench_replay(&mut group, &rt, "postgres", &pg.store);
    }
    group.finish();

    rt.block_on(async {
        sqlite.close().await;
        if let Some(pg) = postgres {
            pg.close().await;
        }
    });
}

criterion_group!(benches, stores);
criterion_main!(benches);
