//! One projection over many workers: the log split into segments, each claimed by one
//! worker at a time, its read model written in the checkpoint's transaction and fenced.
//!
//! ```text
//! cargo run --example scale_out                       # in memory: 3 workers, 8 segments
//! cargo run --example scale_out -- --help
//! # On PostgreSQL, one process per worker (start as many as you like, stop them any way):
//! cargo run --example scale_out -- --store postgres://postgres@127.0.0.1/app --role seed --aggregates 100
//! cargo run --example scale_out -- --store postgres://postgres@127.0.0.1/app --role worker --segments 16 &
//! cargo run --example scale_out -- --store postgres://postgres@127.0.0.1/app --role worker --segments 16 &
//! ```
//!
//! - `seed` appends `--aggregates` orders of `--versions` events each, then exits.
//! - `worker` runs one worker of the projection `OrderProgress` until SIGTERM or SIGINT
//!   (then it stops its segments, saves their checkpoints and releases them at once). It
//!   prints a line each time the segments it holds change: `holding 0/8@1 1/8@1 ...`
//!   (segment@epoch).
//! - `both` (the default, in memory unless `--store` names PostgreSQL) seeds, runs
//!   `--workers` workers in this process, stops one half way to show its segments move to
//!   the others, and checks that every event was handled once, in order per order.
//!
//! The read model, on PostgreSQL: `{schema}.order_progress` (each order's last version
//! handled, and how many events came out of order: none, ever) and `{schema}.handled_events`
//! (each event's id and how many times it was applied: once, ever), written by a
//! [`FencedProjection`] in the transaction that saves the segment's checkpoint.

#[path = "support/exit.rs"]
mod support;

use std::collections::HashMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::health::HealthRegistry;
use eventsource_runtime::postgres::{
    Fenced, FencedProjection, PostgresCheckpointStore, PostgresEventStore,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::segments::{
    Claim, InMemorySegmentClaims, SegmentClaims, SegmentedRunner,
};
use eventsource_runtime::sqlx::{self, PgConnection};
use eventsource_runtime::store::EventStore;

type AnyError = Box<dyn Error + Send + Sync>;

/// What this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Append the orders' events, exit.
    Seed,
    /// Run one worker until SIGTERM or SIGINT.
    Worker,
    /// Seed, run `--workers` workers here, stop one half way, check the model.
    Both,
}

/// One projection split into segments over several workers.
#[derive(Debug, clap::Parser)]
#[command(name = "scale_out")]
struct Options {
    /// What this process does.
    #[arg(long, value_enum, default_value_t = Role::Both)]
    role: Role,
    /// The event store, checkpoints and claims: `memory` (role `both` only) or
    /// `postgres://...`.
    #[arg(long, default_value = "memory")]
    store: String,
    /// The PostgreSQL schema of the store and the read model.
    #[arg(long, default_value = "public")]
    schema: String,
    /// How many segments the projection is split into.
    #[arg(long, default_value_t = 8)]
    segments: u32,
    /// How many workers `both` runs in this process.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// How many orders `seed` (and `both`) appends.
    #[arg(long, default_value_t = 40)]
    aggregates: usize,
    /// How many events each order has.
    #[arg(long, default_value_t = 5)]
    versions: u64,
    /// How long the handler waits per event, as a call to another service would.
    #[arg(long, default_value_t = 0)]
    handler_delay_ms: u64,
    /// How long a worker may go without renewing its claims before the others take its
    /// segments over.
    #[arg(long, default_value_t = 10_000)]
    claim_timeout_ms: u64,
    /// How often a worker renews and rebalances (default: a third of the claim timeout).
    #[arg(long)]
    rebalance_ms: Option<u64>,
    /// The worker's name in the claims (default: host, pid and a random suffix).
    #[arg(long)]
    worker_name: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    let telemetry = eventsource_runtime::telemetry::init();
    support::finish(
        telemetry,
        run(options).await.map_err(|e| e as Box<dyn Error>),
    )
}

async fn run(options: Options) -> Result<(), AnyError> {
    let memory = options.store == "memory";
    match (options.role, memory) {
        (Role::Both, true) => both_in_memory(&options).await,
        (_, true) => Err("--store memory runs in one process only: use --role both".into()),
        (Role::Seed, false) => {
            let (store, _) = postgres(&options).await?;
            seed(&store, &options).await
        }
        (Role::Worker, false) => worker_process(&options).await,
        (Role::Both, false) => both_on_postgres(&options).await,
    }
}

/// The store and checkpoints on PostgreSQL, migrated, with the read model's tables.
async fn postgres(
    options: &Options,
) -> Result<(PostgresEventStore, PostgresCheckpointStore), AnyError> {
    // The workers' reads of the log, untraced: the projection's own spans tell the story.
    let store = PostgresEventStore::connect(&options.store)
        .await?
        .with_schema(&options.schema)?
        .enable_tracing(false);
    store.migrate().await?;
    let checkpoints = store.checkpoint_store();
    let schema = &options.schema;
    for table in [
        format!(
            "CREATE TABLE IF NOT EXISTS \"{schema}\".order_progress (order_id text PRIMARY KEY, \
             version bigint NOT NULL, out_of_order integer NOT NULL DEFAULT 0)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS \"{schema}\".handled_events (event_id uuid PRIMARY KEY, \
             order_id text NOT NULL, version bigint NOT NULL, worker text NOT NULL, \
             applied integer NOT NULL DEFAULT 1)"
        ),
    ] {
        sqlx::query(&table).execute(store.pool()).await?;
    }
    Ok((store, checkpoints))
}

/// `--aggregates` orders of `--versions` events each, appended round robin so that the
/// orders' events interleave in the log.
async fn seed(store: &dyn EventStore, options: &Options) -> Result<(), AnyError> {
    for version in 1..=options.versions {
        for order in 0..options.aggregates {
            let stream = StreamId::new("Order", format!("order-{order}"));
            let event = NewEvent::new(
                "OrderProgressed",
                1,
                serde_json::json!({ "order": order, "version": version }),
            );
            let expected = ExpectedVersion::from_version(version - 1);
            store.append(&stream, expected, vec![event]).await?;
        }
    }
    println!(
        "seeded {} events",
        options.aggregates as u64 * options.versions
    );
    Ok(())
}

/// The projection, on PostgreSQL: each order's progress and each event applied, in the
/// checkpoint's transaction.
struct OrderProgress {
    schema: String,
    worker: String,
    delay: Duration,
}

#[eventsource_runtime::async_trait]
impl FencedProjection for OrderProgress {
    fn name(&self) -> &str {
        "OrderProgress"
    }

    async fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let schema = &self.schema;
        let order = event.stream.aggregate_id();
        let version = i64::try_from(event.version).unwrap_or(i64::MAX);
        sqlx::query(&format!(
            "INSERT INTO \"{schema}\".order_progress (order_id, version) VALUES ($1, $2) \
             ON CONFLICT (order_id) DO UPDATE SET version = excluded.version, \
             out_of_order = order_progress.out_of_order \
                 + (order_progress.version <> excluded.version - 1)::int"
        ))
        .bind(order)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::handler)?;
        sqlx::query(&format!(
            "INSERT INTO \"{schema}\".handled_events (event_id, order_id, version, worker) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) \
             DO UPDATE SET applied = handled_events.applied + 1"
        ))
        .bind(event.event_id)
        .bind(order)
        .bind(version)
        .bind(&self.worker)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::handler)?;
        Ok(())
    }
}

fn configured<P: Projection>(runner: SegmentedRunner<P>, options: &Options) -> SegmentedRunner<P> {
    let runner = runner.claim_timeout(Duration::from_millis(options.claim_timeout_ms));
    let runner = match options.rebalance_ms {
        Some(ms) => runner.rebalance_interval(Duration::from_millis(ms)),
        None => runner,
    };
    match &options.worker_name {
        Some(name) => runner.worker_name(name.clone()),
        None => runner,
    }
}

/// One worker of `OrderProgress` on PostgreSQL, until SIGTERM or SIGINT.
async fn worker_process(options: &Options) -> Result<(), AnyError> {
    let (store, checkpoints) = postgres(options).await?;
    let worker = postgres_worker(&store, &checkpoints, options);
    println!("worker {} started", worker.worker());
    let worker = Arc::new(worker);
    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let printing = print_holdings(Arc::clone(&worker));
    let outcome = tokio::select! {
        outcome = worker.run(shutdown) => outcome,
        () = printing => unreachable!("prints until the process ends"),
    };
    println!("worker {} stopped", worker.worker());
    Ok(outcome?)
}

fn postgres_worker(
    store: &PostgresEventStore,
    checkpoints: &PostgresCheckpointStore,
    options: &Options,
) -> SegmentedRunner<Fenced<OrderProgress>> {
    let name = options.worker_name.clone();
    let projection = OrderProgress {
        schema: options.schema.clone(),
        worker: name.clone().unwrap_or_default(),
        delay: Duration::from_millis(options.handler_delay_ms),
    };
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Fenced::new(checkpoints.clone(), projection),
    )
    .poll_interval(Duration::from_millis(100));
    let claims: Arc<dyn SegmentClaims> = Arc::new(checkpoints.clone());
    configured(runner.segmented(claims, options.segments), options)
}

/// Prints the worker's segments each time they change (`segment@epoch`).
async fn print_holdings<P: Projection>(worker: Arc<SegmentedRunner<P>>) {
    let mut last: Option<Vec<Claim>> = None;
    loop {
        let held = worker.held();
        if last.as_ref() != Some(&held) {
            let list: Vec<String> = held
                .iter()
                .map(|claim| format!("{}@{}", claim.segment, claim.epoch))
                .collect();
            println!("{} holding [{}]", worker.worker(), list.join(" "));
            last = Some(held);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seeds, runs the workers here, stops one half way, checks the model.
async fn both_on_postgres(options: &Options) -> Result<(), AnyError> {
    let (store, checkpoints) = postgres(options).await?;
    seed(&store, options).await?;
    let workers = (0..options.workers.max(1))
        .map(|n| {
            let options = Options {
                worker_name: Some(format!("worker-{n}")),
                ..options.clone_for_worker()
            };
            Arc::new(postgres_worker(&store, &checkpoints, &options))
        })
        .collect();
    run_workers(workers, &store).await?;
    let schema = &options.schema;
    let (events, wrong): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM \"{schema}\".handled_events), \
                (SELECT count(*) FROM \"{schema}\".handled_events WHERE applied <> 1) \
              + (SELECT coalesce(sum(out_of_order), 0) FROM \"{schema}\".order_progress)"
    ))
    .fetch_one(store.pool())
    .await?;
    println!("{events} events in the read model, {wrong} applied twice or out of order");
    Ok(())
}

impl Options {
    fn clone_for_worker(&self) -> Self {
        Self {
            role: self.role,
            store: self.store.clone(),
            schema: self.schema.clone(),
            segments: self.segments,
            workers: self.workers,
            aggregates: self.aggregates,
            versions: self.versions,
            handler_delay_ms: self.handler_delay_ms,
            claim_timeout_ms: self.claim_timeout_ms,
            rebalance_ms: self.rebalance_ms,
            worker_name: self.worker_name.clone(),
        }
    }
}

/// The in-memory model: each order's versions as handled, in order.
#[derive(Default)]
struct Versions {
    seen: HashMap<String, Vec<u64>>,
    delay: Duration,
}

#[eventsource_runtime::async_trait]
impl Projection for Versions {
    fn name(&self) -> &str {
        "OrderProgress"
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let order = event.stream.aggregate_id().to_owned();
        self.seen.entry(order).or_default().push(event.version);
        Ok(())
    }
}

/// Everything in this process, in memory.
async fn both_in_memory(options: &Options) -> Result<(), AnyError> {
    let store = InMemoryEventStore::new().enable_tracing(false);
    seed(&store, options).await?;
    let checkpoints = Arc::new(InMemoryCheckpointStore::new());
    let claims: Arc<dyn SegmentClaims> = Arc::new(InMemorySegmentClaims::new());
    let options = Options {
        rebalance_ms: Some(options.rebalance_ms.unwrap_or(50)),
        handler_delay_ms: options.handler_delay_ms.max(1),
        ..options.clone_for_worker()
    };
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|n| {
            let projection = Versions {
                delay: Duration::from_millis(options.handler_delay_ms),
                ..Versions::default()
            };
            let runner =
                ProjectionRunner::new(Arc::new(store.clone()), checkpoints.clone(), projection)
                    .poll_interval(Duration::from_millis(20));
            let runner = runner.segmented(Arc::clone(&claims), options.segments);
            let runner = configured(runner, &options).worker_name(format!("worker-{n}"));
            Arc::new(runner)
        })
        .collect();
    let kept = run_workers(workers, &store).await?;
    // Every order's versions, over all workers, once each and in order.
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for worker in &kept {
        for (order, seen) in &worker.projection().lock().await.seen {
            versions.entry(order.clone()).or_default().extend(seen);
        }
    }
    let expected: Vec<u64> = (1..=options.versions).collect();
    let complete = versions.len() == options.aggregates
        && versions.values().all(|seen| {
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted == expected
        });
    if !complete {
        return Err("some event was not handled exactly once".into());
    }
    println!(
        "every one of the {} events handled once, each order's in version order",
        options.aggregates as u64 * options.versions
    );
    Ok(())
}

/// Runs `workers` until the projection caught up with the store, stopping the first one
/// half way (its segments go to the others at once); returns the workers.
async fn run_workers<P: Projection>(
    workers: Vec<Arc<SegmentedRunner<P>>>,
    store: &dyn EventStore,
) -> Result<Vec<Arc<SegmentedRunner<P>>>, AnyError> {
    let head = store.head_position().await?.unwrap_or(0);
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for worker in &workers {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(Some(stop));
        let running = Arc::clone(worker);
        tasks.push(tokio::spawn(async move { running.run(stopped).await }));
        tokio::spawn(print_holdings(Arc::clone(worker)));
    }
    let health = HealthRegistry::new();
    let last = &workers[workers.len() - 1];
    health.watch(&**last);
    let first = &workers[0];
    let mut stop_first = stops[0].take().filter(|_| workers.len() >= 2);
    let half_way = async {
        while let Some(stop) = stop_first.take() {
            let segments = first.segments().await.unwrap_or_default();
            let past_half = segments.iter().filter(|s| s.checkpoint >= head / 2).count();
            if !segments.is_empty() && past_half * 2 >= segments.len() {
                println!("stopping {} half way", first.worker());
                let _ = stop.send(());
            } else {
                stop_first = Some(stop);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        std::future::pending::<()>().await;
    };
    // Until every segment, whoever holds it, has handled what was stored when they started.
    tokio::select! {
        _ = last.caught_up() => {}
        () = half_way => {}
    }
    // The last worker's health, every segment in it, before the workers stop.
    println!("{}", health.report().await);
    for stop in stops.iter_mut().filter_map(Option::take) {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await??;
    }
    Ok(workers)
}
