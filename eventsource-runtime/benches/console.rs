//! The console's data on a big store (issue 66, part 5): PostgreSQL with 1,000,000 events
//! of 10,000 streams, 50 projections split into 16 segments each (800 segment checkpoints
//! at various lags, each segment claimed by a worker), a relay, and parked events.
//!
//! - `console/status_json`: `GET /api/status` through the console's router (what the page
//!   polls every 2 s): every checkpoint, its lag in events and seconds, owners, epochs and
//!   parked events, as JSON. Goal: under 300 ms.
//! - `console/operate_status`: the same report through `operate::status`, as
//!   `eventsource status` computes it. Goal: under 1 s.
//! - `console/causation_1000`: `GET /api/causation` of a correlation of 1,000 events (each
//!   caused by the one before: a chain 1,000 deep), its tree read, laid out and drawn as
//!   SVG. Goal: under 1 s.
//!
//! The store is seeded once, in the schema `eventsource_console_bench` (a few
//! `INSERT ... SELECT generate_series` statements, then the segments' index), and reused by
//! later runs while it holds what this bench makes.
//!
//! `DATABASE_URL=postgres://... cargo bench -p eventsource-runtime --features console,postgres --bench console`
//! (without `DATABASE_URL` it prints `skipped:` and measures nothing).

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use eventsource_runtime::console::Console;
use eventsource_runtime::operate::{self, Stores};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::EventStore as _;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

const SCHEMA: &str = "eventsource_console_bench";
const EVENTS: i64 = 1_000_000;
const STREAMS: i64 = 10_000;
const PROJECTIONS: i64 = 50;
const SEGMENTS: i64 = 16;

/// Seeds the store unless it already holds what this bench makes.
async fn seeded(url: &str) -> PostgresEventStore {
    let store = PostgresEventStore::connect(url)
        .await
        .expect("PostgreSQL answers")
        .with_schema(SCHEMA)
        .unwrap();
    let pool = store.pool().clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap_or(-1)
        }
    };
    let events = count("SELECT count(*) FROM eventsource_console_bench.events").await;
    let chain = count(
        "SELECT count(*) FROM eventsource_console_bench.events \
         WHERE metadata->>'correlation_id' = 'req-0'",
    )
    .await;
    let segments =
        count("SELECT count(*) FROM eventsource_console_bench.projection_segments").await;
    if events == EVENTS && segments == PROJECTIONS * SEGMENTS && chain == 1000 {
        return store;
    }
    eprintln!("seeding {SCHEMA}: {EVENTS} events, {PROJECTIONS} projections x {SEGMENTS} segments");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {SCHEMA}"))
        .execute(&pool)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let statements = [
        // Stream i % STREAMS at version i / STREAMS + 1; an hour of events up to now; a
        // correlation of every 1,000, each event caused by the one before (ids from i).
        format!(
            "INSERT INTO {SCHEMA}.events (stream_type, stream_id, version, event_id, event_type, \
             schema_version, recorded_at, payload, metadata) \
             SELECT 'Order', 'o-' || (i % {STREAMS}), i / {STREAMS} + 1, md5(i::text)::uuid, \
                    'OrderPlaced', 1, now() - ({EVENTS} - i) * interval '3.6 milliseconds', \
                    jsonb_build_object('n', i), \
                    jsonb_build_object('correlation_id', 'req-' || (i / 1000), \
                                       'causation_id', CASE WHEN i % 1000 = 0 \
                                           THEN 'cause-' || i \
                                           ELSE md5((i - 1)::text)::uuid::text END) \
             FROM generate_series(0, {EVENTS} - 1) AS i"
        ),
        // Projection p behind by p * 100 events plus a little per segment.
        format!(
            "INSERT INTO {SCHEMA}.checkpoints (projection, position) \
             SELECT 'projection-' || p || '[' || s || '/{SEGMENTS}]', {EVENTS} - p * 100 - s \
             FROM generate_series(0, {PROJECTIONS} - 1) AS p, \
                  generate_series(0, {SEGMENTS} - 1) AS s"
        ),
        format!(
            "INSERT INTO {SCHEMA}.projection_segments (projection, segment, segments, owner, \
             epoch, renewed_at) \
             SELECT 'projection-' || p, s, {SEGMENTS}, 'worker-' || (s % 4), 3, now() \
             FROM generate_series(0, {PROJECTIONS} - 1) AS p, \
                  generate_series(0, {SEGMENTS} - 1) AS s"
        ),
        format!(
            "INSERT INTO {SCHEMA}.checkpoints (projection, position) \
             VALUES ('eventsource.relay', {EVENTS} - 5)"
        ),
        format!("VACUUM ANALYZE {SCHEMA}.events"),
    ];
    for statement in &statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    store.prepare_segments(SEGMENTS as u32).await.unwrap();
    store
}

fn console(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("skipped: DATABASE_URL is not set (PostgreSQL)");
        return;
    };
    let runtime = Runtime::new().unwrap();
    let store = runtime.block_on(seeded(&url));
    let stores = Stores::postgres(&store);
    let router = Console::new(stores.clone()).router();

    let report = runtime.block_on(operate::status(&stores)).unwrap();
    assert_eq!(report.head, EVENTS as u64);
    assert_eq!(report.projections.len(), PROJECTIONS as usize + 1);

    let mut group = c.benchmark_group("console");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("status_json", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = Request::get("/api/status").body(Body::empty()).unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                axum::body::to_bytes(response.into_body(), 1 << 24)
                    .await
                    .unwrap()
            })
        });
    });
    group.bench_function("operate_status", |b| {
        b.iter(|| runtime.block_on(operate::status(&stores)).unwrap());
    });
    let tree = runtime.block_on(operate::causation_tree(&[&store], "req-0"));
    assert_eq!(tree.unwrap().len(), 1000);
    group.bench_function("causation_1000", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = Request::get("/api/causation?correlation=req-0")
                    .body(Body::empty())
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                axum::body::to_bytes(response.into_body(), 1 << 24)
                    .await
                    .unwrap()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, console);
criterion_main!(benches);
