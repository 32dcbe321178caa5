//! The operator's command line on a big store (issue 66, point 5): `eventsource status` on a
//! 1,000,000-event PostgreSQL store with 50 projections split into 16 segments each, run as
//! the user runs it (the built binary, a process per run, `--json`), and the causation tree
//! of a 1,000-event correlation through the library (`CausationTree::load`), and found by
//! one of its events' id (`lineage::find_event`, then the tree, marked). The goal of each is
//! under one second.
//!
//! The store is seeded once, by bulk SQL, in the schema `es_bench_operate` of `DATABASE_URL`
//! (kept between runs: a later run finds its 1,000,000 events and seeds nothing; drop the
//! schema to seed again): 100,000 order streams of 10 events; the last 1,000 events share
//! the correlation id `bench-tree`, each caused by the one four places before it (a tree
//! five levels deep under one request); 50 projections `p00`..`p49`, each split into 16
//! segments with checkpoints spread over the last 100,000 positions, owned by four workers,
//! and a parked event each.
//!
//! `DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/eventsource_test cargo bench -p
//! eventsource-runtime --features cli,postgres --bench operate`

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eventsource_runtime::lineage::{CausationTree, find_event};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::sqlx;
use tokio::runtime::Runtime;

const SCHEMA: &str = "es_bench_operate";
const EVENTS: i64 = 1_000_000;
const TREE: i64 = 1_000;
const PROJECTIONS: i64 = 50;
const SEGMENTS: i64 = 16;

/// The seeding, one statement each, `__schema__` standing for the quoted schema.
const SEED: &[&str] = &[
    // Event `g` (0-based) of stream `o-{g / 10}`, version `g % 10 + 1`, a second apart, its
    // id a UUID v7 of its time derived from `g` (so that a cause can name it, and
    // `find_event` finds it as it finds a `NewEvent`'s); the last 1,000 make the tree.
    "CREATE FUNCTION pg_temp.bench_at(g bigint) RETURNS timestamptz LANGUAGE sql STABLE
         AS $$ SELECT date_trunc('second', now()) - make_interval(secs => 1000000 - g) $$;
     CREATE FUNCTION pg_temp.bench_id(g bigint) RETURNS uuid LANGUAGE sql STABLE
         AS $$ SELECT (lpad(to_hex((extract(epoch FROM pg_temp.bench_at(g)) * 1000)::bigint),
                            12, '0')
                       || '7' || substr(md5('e' || g), 1, 3)
                       || '8' || substr(md5('e' || g), 4, 15))::uuid $$;
     INSERT INTO __schema__.events (stream_type, stream_id, version, event_id, event_type,
         schema_version, recorded_at, payload, metadata)
     SELECT 'Order', 'o-' || (g / 10), g % 10 + 1, pg_temp.bench_id(g),
            CASE WHEN g % 10 = 0 THEN 'OrderPlaced' ELSE 'LineAdded' END, 1,
            pg_temp.bench_at(g), jsonb_build_object('n', g),
            CASE WHEN g < 999000 THEN '{}'::jsonb
                 WHEN g = 999000 THEN jsonb_build_object('correlation_id', 'bench-tree',
                     'causation_id', 'bench-request')
                 ELSE jsonb_build_object('correlation_id', 'bench-tree',
                     'causation_id', pg_temp.bench_id(999000 + (g - 999000 - 1) / 4)::text)
            END
       FROM generate_series(0, 999999) AS g",
    "INSERT INTO __schema__.projection_segments (projection, segment, segments, owner, epoch,
         renewed_at)
     SELECT 'p' || lpad(p::text, 2, '0'), s, 16, 'worker-' || (s % 4), 1, now()
       FROM generate_series(0, 49) AS p, generate_series(0, 15) AS s",
    "INSERT INTO __schema__.checkpoints (projection, position)
     SELECT 'p' || lpad(p::text, 2, '0') || '[' || s || '/16]', 900000 + p * 2000 + s * 100
       FROM generate_series(0, 49) AS p, generate_series(0, 15) AS s",
    "INSERT INTO __schema__.parked_events (projection, position, error)
     SELECT 'p' || lpad(p::text, 2, '0') || '[0/16]', 800000 + p, 'payload: expected value'
       FROM generate_series(0, 49) AS p",
    "ANALYZE __schema__.events",
];

/// The store, seeded if it is not yet.
async fn seeded(url: &str) -> PostgresEventStore {
    let store = PostgresEventStore::connect(url)
        .await
        .expect("PostgreSQL")
        .with_schema(SCHEMA)
        .expect("a schema name");
    store.migrate().await.expect("migrated");
    let quoted = format!("\"{SCHEMA}\"");
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {quoted}.events"))
        .fetch_one(store.pool())
        .await
        .expect("counted");
    if count == EVENTS {
        return store;
    }
    assert_eq!(
        count, 0,
        "{SCHEMA} holds {count} events: drop the schema to seed it again"
    );
    let started = Instant::now();
    for statement in SEED {
        sqlx::raw_sql(&statement.replace("__schema__", &quoted))
            .execute(store.pool())
            .await
            .expect("seeded");
    }
    eprintln!("seeded {SCHEMA} in {:.1?}", started.elapsed());
    store
}

fn operate(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("operate: skipped: DATABASE_URL not set");
        return;
    };
    let runtime = Runtime::new().expect("a runtime");
    let store = runtime.block_on(seeded(&url));

    let status = || {
        let output = Command::new(env!("CARGO_BIN_EXE_eventsource"))
            .args(["--store", &url, "--schema", SCHEMA, "status", "--json"])
            .output()
            .expect("the eventsource binary runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let report: serde_json::Value = serde_json::from_slice(&status()).expect("JSON");
    assert_eq!(report["head"], EVENTS);
    let projections = report["projections"].as_array().expect("projections");
    assert_eq!(projections.len(), usize::try_from(PROJECTIONS).unwrap());
    assert_eq!(
        projections[0]["segments"].as_array().map(Vec::len),
        Some(usize::try_from(SEGMENTS).unwrap())
    );

    let tree = runtime
        .block_on(CausationTree::load(&store, "bench-tree"))
        .unwrap();
    assert_eq!(tree.len(), usize::try_from(TREE).unwrap());
    let deepest = tree
        .events()
        .last()
        .map(|event| event.id)
        .expect("an event");

    let mut group = c.benchmark_group("operate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("status_1M_events_50x16_segments_process", |b| {
        b.iter(status)
    });
    group.bench_function("causation_tree_1000_events", |b| {
        b.iter(|| {
            let tree = runtime.block_on(CausationTree::load(&store, "bench-tree"));
            tree.unwrap().len()
        });
    });
    group.bench_function("causation_tree_1000_events_by_event_id", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let event = find_event(&store, deepest).await.unwrap().expect("found");
                let correlation = event.metadata.correlation_id().unwrap_or_default();
                let tree = CausationTree::load(&store, correlation).await.unwrap();
                tree.with_marked(deepest).len()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, operate);
criterion_main!(benches);
