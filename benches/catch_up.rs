//! Projection catch-up against the database's own read speed (issue 36, part 1).
//!
//! Per database (PostgreSQL from `DATABASE_URL`, in a fresh schema dropped at the end, and
//! SQLite on a file in a temporary directory) the log is filled with 100k events (1M with
//! `CATCH_UP_1M=1`): four event types, a small JSON payload with an `amount`. Then each
//! round runs four cases, in an order that rotates from round to round:
//!
//! - `raw`: a hand-written keyset loop, `SELECT <the store's columns> FROM events WHERE
//!   position > $1 ORDER BY position LIMIT 256`, each payload parsed as a
//!   `serde_json::Value`, the events counted per type and the amounts summed;
//! - `lean`: the fastest such loop a person would write: the same, reading only the three
//!   columns it needs (`position, event_type, payload`);
//! - `off`: `ProjectionRunner::rebuild()` (default settings) of a projection doing the same,
//!   with the process's telemetry switched off;
//! - `on`: the same with telemetry on, defaults (eventsource's layer and an SDK tracer
//!   provider over an exporter that drops every span, an SDK meter provider whose reader
//!   exports once an hour: store spans on, projection spans off);
//! - `span`: the same with projection spans on (`set_projection_tracing(Some(true))`): one
//!   span per event.
//!
//! Every case checks its totals against the raw loop's. Criterion times one round (all four
//! cases); the bench prints each case's median, its ratio to the raw loop's median (higher is
//! faster: raw time / case time) and to the lean loop's, its median CPU time (all the
//! process's threads; for SQLite the whole work, which a busy machine's wall times hide;
//! PostgreSQL's server is another process) against the lean loop's, and its peak RSS
//! (`VmHWM`, reset before each case through `/proc/self/clear_refs`).
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench catch_up`
//! (`CATCH_UP_1M=1` for 1M events, `CATCH_UP_ONLY=postgres` or `sqlite` for one database,
//! `CATCH_UP_CHECKPOINT_EVERY=<events>` for the runners' `checkpoint_every`,
//! `CATCH_UP_ROUNDS=<n>` for more rounds than 10).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx::{self, Row};
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use eventsource_runtime::telemetry::toggles;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

mod common;

/// Events per append while filling the log.
const FILL_BATCH: u64 = 500;
/// The raw loop's page, the runner's default batch.
const PAGE: i64 = 256;
const TYPES: [&str; 4] = ["Deposited", "Withdrawn", "Opened", "Closed"];
/// The columns the stores read (PostgreSQL: `payload` and `metadata` as text).
const PG_COLUMNS: &str = "position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, recorded_at, recorded_at_nanos, payload::text AS payload, \
     metadata::text AS metadata";
/// What the lean loop reads (PostgreSQL: the payload as text, as the store reads it).
const LEAN_PG_COLUMNS: &str = "position, event_type, payload::text AS payload";
const LEAN_SQLITE_COLUMNS: &str = "position, event_type, payload";
const SQLITE_COLUMNS: &str = "position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata";

fn events() -> u64 {
    if std::env::var("CATCH_UP_1M").is_ok_and(|v| !v.is_empty() && v != "0") {
        1_000_000
    } else {
        100_000
    }
}

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

/// What both sides compute: events per type, the amounts' sum.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    per_type: HashMap<String, u64>,
    amount: i64,
}

impl Totals {
    fn add(&mut self, event_type: &str, payload: &Value) {
        match self.per_type.get_mut(event_type) {
            Some(count) => *count += 1,
            None => {
                self.per_type.insert(event_type.to_owned(), 1);
            }
        }
        self.amount += payload["amount"].as_i64().unwrap_or(0);
    }
}

/// The projection rebuilt: the same totals, from each event's payload parsed as a `Value`.
#[derive(Default)]
struct TotalsProjection(Totals);

#[eventsource_runtime::async_trait]
impl Projection for TotalsProjection {
    fn name(&self) -> &str {
        "CatchUpBench"
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        let payload: Value = event.payload.decode().map_err(ProjectionError::handler)?;
        self.0.add(&event.event_type, &payload);
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ProjectionError> {
        self.0 = Totals::default();
        Ok(())
    }
}

/// One database under test.
enum Database {
    Postgres(PostgresEventStore),
    Sqlite {
        store: SqliteEventStore,
        dir: PathBuf,
    },
}

impl Database {
    fn label(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite { .. } => "sqlite",
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Postgres(store) => Arc::new(store.clone()),
            Self::Sqlite { store, .. } => Arc::new(store.clone()),
        }
    }

    fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        match self {
            Self::Postgres(store) => Arc::new(store.checkpoint_store()),
            Self::Sqlite { store, .. } => Arc::new(store.checkpoint_store()),
        }
    }

    async fn fill(&self, total: u64) {
        let store = self.store();
        let started = Instant::now();
        for (i, first) in (0..total).step_by(FILL_BATCH as usize).enumerate() {
            let batch = (first..(first + FILL_BATCH).min(total))
                .map(|n| {
                    NewEvent::new(
                        TYPES[(n % 4) as usize],
                        1,
                        json!({ "amount": n % 1000, "currency": "EUR", "reference": format!("bench-{n}") }),
                    )
                })
                .collect();
            store
                .append(
                    &StreamId::new("Account", format!("a-{i}")),
                    ExpectedVersion::NoStream,
                    batch,
                )
                .await
                .expect("fill the log");
        }
        eprintln!(
            "catch_up: {} filled with {total} events in {:.1?}",
            self.label(),
            started.elapsed()
        );
    }

    /// The hand-written keyset loop, reading the store's columns.
    async fn raw(&self) -> Totals {
        self.keyset_loop(PG_COLUMNS, SQLITE_COLUMNS).await
    }

    /// The hand-written keyset loop, reading only the columns it needs.
    async fn lean(&self) -> Totals {
        self.keyset_loop(LEAN_PG_COLUMNS, LEAN_SQLITE_COLUMNS).await
    }

    /// A keyset loop over the log selecting `pg_columns` or `sqlite_columns`.
    async fn keyset_loop(&self, pg_columns: &str, sqlite_columns: &str) -> Totals {
        let mut totals = Totals::default();
        let mut after = 0_i64;
        loop {
            let page = match self {
                Self::Postgres(store) => {
                    let sql = format!(
                        "SELECT {pg_columns} FROM \"{}\".events WHERE position > $1 \
                         ORDER BY position LIMIT $2",
                        store.schema()
                    );
                    let rows = sqlx::query(&sql)
                        .bind(after)
                        .bind(PAGE)
                        .fetch_all(store.pool())
                        .await
                        .expect("raw page");
                    rows.iter().map(|row| read_row(row, &mut totals)).last()
                }
                Self::Sqlite { store, .. } => {
                    let sql = format!(
                        "SELECT {sqlite_columns} FROM events WHERE position > ?1 \
                         ORDER BY position LIMIT ?2"
                    );
                    let rows = sqlx::query(&sql)
                        .bind(after)
                        .bind(PAGE)
                        .fetch_all(store.pool())
                        .await
                        .expect("raw page");
                    rows.iter().map(|row| read_row(row, &mut totals)).last()
                }
            };
            match page {
                Some(last) => after = last,
                None => return totals,
            }
        }
    }

    async fn close(self) {
        match self {
            Self::Postgres(store) => {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema());
                if let Err(e) = sqlx::raw_sql(&drop).execute(store.pool()).await {
                    eprintln!("catch_up: could not drop schema {}: {e}", store.schema());
                }
                store.close().await;
            }
            Self::Sqlite { store, dir } => {
                store.close().await;
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Adds one raw row to `totals`; its position.
fn read_row<'r, R: Row>(row: &'r R, totals: &mut Totals) -> i64
where
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let event_type: &str = row.try_get("event_type").expect("event_type");
    let payload: &str = row.try_get("payload").expect("payload");
    let payload: Value = serde_json::from_str(payload).expect("a JSON payload");
    totals.add(event_type, &payload);
    row.try_get("position").expect("position")
}

async fn open_postgres() -> Option<Database> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        eprintln!("catch_up: PostgreSQL skipped: DATABASE_URL not set");
        return None;
    };
    let schema = unique("es_catch_up");
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("catch_up: cannot connect to DATABASE_URL: {e}"))
        .with_schema(&schema)
        .expect("a valid schema name");
    store.migrate().await.expect("migrate the bench schema");
    Some(Database::Postgres(store))
}

async fn open_sqlite() -> Database {
    let dir = std::env::temp_dir().join(unique("eventsource_bench_catch_up"));
    std::fs::create_dir_all(&dir).expect("create the SQLite bench directory");
    let path = dir.join("events.db");
    let store = SqliteEventStore::connect(path.to_str().expect("a UTF-8 temp path"))
        .await
        .expect("open the SQLite bench database");
    store.migrate().await.expect("migrate the SQLite database");
    Database::Sqlite { store, dir }
}

/// The cases of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    Raw,
    Lean,
    Off,
    On,
    Span,
}

const CASES: [Case; 5] = [Case::Raw, Case::Lean, Case::Off, Case::On, Case::Span];

impl Case {
    fn label(self) -> &'static str {
        match self {
            Self::Raw => "raw keyset loop",
            Self::Lean => "lean keyset loop (3 columns)",
            Self::Off => "rebuild, tracing off",
            Self::On => "rebuild, tracing on (defaults)",
            Self::Span => "rebuild, one span per event",
        }
    }
}

/// `CATCH_UP_ROUNDS`: criterion's samples, one round each (default 10, at least 10).
fn sample_size() -> usize {
    std::env::var("CATCH_UP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(10)
}

/// `CATCH_UP_CHECKPOINT_EVERY`: the runners' `checkpoint_every` (default: theirs).
fn checkpoint_every() -> Option<usize> {
    std::env::var("CATCH_UP_CHECKPOINT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The peak resident set size so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts the peak RSS over from the current RSS (Linux: `5` to `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The CPU time this process has used so far, all its threads (`utime` + `stime` of
/// `/proc/self/stat`, in ticks of 10 ms): for SQLite the whole work of a case, on a machine
/// too busy for its wall time to compare; PostgreSQL's server is another process.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which ends with the last `)`.
    let fields = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// What one run of a case measured.
#[derive(Default)]
struct Measured {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    peak_kib: u64,
}

/// Runs `case` once; its time, CPU time and peak RSS.
async fn run_case(db: &Database, case: Case, expected: &Totals) -> (Duration, Duration, u64) {
    toggles::set_enabled(case != Case::Off);
    toggles::set_projection_tracing((case == Case::Span).then_some(true));
    reset_peak_rss();
    let cpu = process_cpu();
    let started = Instant::now();
    let totals = match case {
        Case::Raw => db.raw().await,
        Case::Lean => db.lean().await,
        _ => {
            let mut runner =
                ProjectionRunner::new(db.store(), db.checkpoints(), TotalsProjection::default());
            if let Some(events) = checkpoint_every() {
                runner = runner.checkpoint_every(events);
            }
            runner.rebuild().await.expect("rebuild");
            runner.projection().lock().await.0.clone()
        }
    };
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu);
    let peak = peak_rss_kib();
    assert_eq!(&totals, expected, "{} computed other totals", case.label());
    toggles::set_enabled(true);
    toggles::set_projection_tracing(None);
    (elapsed, cpu, peak)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Installs the "tracing on" pipeline for the whole process (switched off per case with the
/// process switch).
fn install_telemetry() -> common::DroppingExporter {
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = common::DroppingExporter::default();
    let (dispatch, provider) = common::traced_dispatch(&exporter);
    // Kept for the whole process.
    std::mem::forget(provider);
    tracing::dispatcher::set_global_default(dispatch).expect("one global subscriber");
    let meters = SdkMeterProvider::builder()
        .with_reader(
            // Read once an hour: the instruments record, nothing is exported meanwhile.
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    opentelemetry::global::set_meter_provider(meters);
    exporter
}

fn catch_up(c: &mut Criterion) {
    let exported = install_telemetry();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let total = events();
    let only = std::env::var("CATCH_UP_ONLY").unwrap_or_default();
    let mut databases = Vec::new();
    if only.is_empty() || only == "postgres" {
        databases.extend(rt.block_on(open_postgres()));
    }
    if only.is_empty() || only == "sqlite" {
        databases.push(rt.block_on(open_sqlite()));
    }
    let mut summary = Vec::new();
    for db in databases {
        summary.push(bench_database(c, &rt, &db, total));
        rt.block_on(db.close());
    }
    eprintln!(
        "\ncatch_up: {total} events, median of the rounds; ratio = raw loop's time / case's \
         time (>= 1 is at least as fast); spans exported: {}",
        exported.exported.load(Ordering::Relaxed)
    );
    for line in summary.into_iter().flatten() {
        eprintln!("{line}");
    }
}

fn bench_database(c: &mut Criterion, rt: &Runtime, db: &Database, total: u64) -> Vec<String> {
    rt.block_on(db.fill(total));
    let expected = rt.block_on(db.raw());
    let times: Mutex<HashMap<Case, Measured>> = Mutex::new(HashMap::new());
    let mut group = c.benchmark_group(format!("catch_up_{}k", total / 1000));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(sample_size())
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let mut round = 0_usize;
    group.bench_function(format!("{}_round", db.label()), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                for k in 0..CASES.len() {
                    let case = CASES[(round + k) % CASES.len()];
                    let (elapsed, cpu, peak) = rt.block_on(run_case(db, case, &expected));
                    spent += elapsed;
                    let mut times = times.lock().unwrap();
                    let entry = times.entry(case).or_default();
                    entry.wall.push(elapsed);
                    entry.cpu.push(cpu);
                    entry.peak_kib = entry.peak_kib.max(peak);
                }
            }
            spent
        });
    });
    group.finish();
    let mut times = times.into_inner().unwrap();
    let raw = median(&mut times.get_mut(&Case::Raw).expect("raw timed").wall);
    let lean = times.get_mut(&Case::Lean).expect("lean timed");
    let (lean, lean_cpu) = (median(&mut lean.wall), median(&mut lean.cpu));
    CASES
        .iter()
        .map(|case| {
            let measured = times.get_mut(case).expect("every case timed");
            let rounds = measured.wall.len();
            let wall = median(&mut measured.wall);
            let cpu = median(&mut measured.cpu);
            format!(
                "  {:<9} {:<32} median {:>9.1?} ({rounds} runs)  ratio {:.2}x, {:.2}x the lean \
                 loop  CPU {:>7.1?}, {:.2}x the lean loop's  peak RSS {} MiB",
                db.label(),
                case.label(),
                wall,
                raw.as_secs_f64() / wall.as_secs_f64(),
                lean.as_secs_f64() / wall.as_secs_f64(),
                cpu,
                lean_cpu.as_secs_f64() / cpu.as_secs_f64().max(1e-9),
                measured.peak_kib / 1024,
            )
        })
        .collect()
}

criterion_group!(benches, catch_up);
criterion_main!(benches);
