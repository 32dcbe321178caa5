//! One trace across processes: orders placed and shipped in a producer, their events
//! published through a broker (RabbitMQ, Kafka, NATS JetStream) by a relay (the store is the outbox),
//! handled in a consumer by two consumer groups: `confirmations` (sends an order
//! confirmation) and `shipping` (notifies the shipping department).
//!
//! ```text
//! cargo run --example distributed --features rabbitmq,kafka,nats -- --help
//! cargo run --example distributed -- --role both
//! cargo run --example distributed --features rabbitmq -- --role consumer --broker amqp://guest:guest@127.0.0.1:5672/%2f &
//! cargo run --example distributed --features rabbitmq -- --role producer --broker amqp://guest:guest@127.0.0.1:5672/%2f
//! cargo run --example distributed --features kafka -- --role consumer --broker kafka://127.0.0.1:9092 &
//! cargo run --example distributed --features kafka -- --role producer --broker kafka://127.0.0.1:9092
//! cargo run --example distributed --features nats -- --role consumer --broker nats://127.0.0.1:4222 &
//! cargo run --example distributed --features nats -- --role producer --broker nats://127.0.0.1:4222
//! # The relay split into 16 segments, one worker per process (the store on PostgreSQL):
//! cargo run --example distributed --features rabbitmq -- --role producer --broker amqp://... --store postgres://postgres@127.0.0.1/app --no-relay
//! cargo run --example distributed --features rabbitmq -- --role producer --broker amqp://... --store postgres://postgres@127.0.0.1/app --relay-only --relay-segments 16 &
//! ```
//!
//! `--help` lists every option with its default and the environment variables that matter.
//!
//! - `producer` runs the commands on its store, then relays every stored event to the broker
//!   and exits once the broker confirmed them all (`--no-relay`: it only stores;
//!   `--relay-only`: it only publishes; `--follow`: its relay goes on until SIGTERM or SIGINT).
//! - With `--relay-segments N` the producer's relay is one worker of a relay split into N
//!   segments claimed in the `--store` database (PostgreSQL; `--store-schema`): start one per
//!   process, same N, each named by `--worker-name`; the others take a dead one's segments
//!   over after `--claim-timeout-ms`. Each prints its segments as they change (`relay holding
//!   [0/16@1 5/16@1]`: segment@epoch) and exits once every segment, whoever holds it,
//!   published what was stored when it started (`published every stored event, up to
//!   position N`; with `--follow`, at SIGTERM or SIGINT). An aggregate's events are in one
//!   segment, published in version order; a killed worker's segments are published again from
//!   their checkpoints (at least once).
//! - `consumer` consumes until SIGTERM or SIGINT, then shuts down gracefully (the message
//!   being handled finishes and is settled), within each group's stop timeout (10 s).
//! - `both` does both in one process and stops once every event was handled; with
//!   `--broker memory` (the default) on the in-memory bus, without any server.
//!
//! A role that needs a broker and cannot use the one named exits with status 1 and one line
//! saying what failed and where (the URL's password shown as `***`).
//!
//! Effectively once: the producer gives each command an id (`execute_once`), so running a
//! command again after an uncertain outcome returns its first events (the producer says how
//! many were new and how many already stored); the confirmation is sent by an idempotent
//! handler (`bus::Idempotent`), so a message redelivered after the consumer died (between
//! the confirmation and the acknowledgement, say during the slow CRM update) is acknowledged
//! without a second confirmation: its handle span says `eventsource.handler.duplicate=true`.
//! Consumers that replace each other must share the database named by `--processed` to
//! recognise what another one handled.
//!
//! A third group, `history` (`--groups history`), keeps every event of every aggregate in
//! the table `event_history` of the `--processed` database, which must then be PostgreSQL:
//! each row is written in the transaction that records the message as handled
//! (`postgres::TransactionalIdempotent`), so each event gets exactly one row, however often
//! the broker delivers it; `history-seen` prints every delivery, redeliveries included.
//! Several consumer processes of the group share the work; on Kafka, records are keyed by
//! aggregate id, so with `--partitions N` an aggregate's events stay in one of N partitions,
//! handled in version order by whichever process holds it (see docs/brokers.md, "Order per
//! aggregate with several consumers").
//!
//! Each process calls `telemetry::init()`: `OTEL_SERVICE_NAME` (default
//! `distributed-{role}`) and `OTEL_EXPORTER_OTLP_*` apply.

// Built without a broker feature, only `--broker memory` works: the broker code is there
// but unreachable.
#![cfg_attr(
    not(any(feature = "rabbitmq", feature = "kafka", feature = "nats")),
    allow(unused)
)]

#[path = "support/brokers.rs"]
mod brokers;
#[path = "support/databases.rs"]
mod databases;
#[path = "domain/order.rs"]
mod domain;
#[path = "support/relay.rs"]
mod relaying;
#[path = "support/exit.rs"]
mod support;

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use brokers::{Broker, Group};
use databases::{Processed, processed_messages};
use domain::{Order, OrderPlaced, OrderShipped, ShipOrder, sample_order};
use eventsource_runtime::bus::{
    EventBus, HandlerError, Idempotent, InMemoryProcessedMessages, handler_fn,
};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::health::HealthRegistry;
use eventsource_runtime::postgres::{
    PostgresProcessedMessages, TransactionalHandler, TransactionalIdempotent,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::sqlx::{self, PgConnection};
use eventsource_runtime::telemetry::Telemetry;
use eventsource_runtime::telemetry::secrets::redact_url;

/// Any error, from any task.
type AnyError = Box<dyn Error + Send + Sync>;

/// What this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Store the orders, relay them to the broker, exit.
    Producer,
    /// Consume until SIGTERM or SIGINT.
    Consumer,
    /// Both in one process, until every event was handled.
    Both,
}

/// The consumer groups a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GroupName {
    /// Each OrderPlaced: the order confirmation (idempotent), then the CRM update.
    Confirmations,
    /// Each OrderShipped: the shipping notice.
    Shipping,
    /// Every event of every aggregate: a row in `event_history` (exactly once, needs
    /// `--processed postgres://...`), and a line per delivery.
    History,
}

/// Orders placed in one process, confirmed and shipped in another: one trace across them.
#[derive(Debug, clap::Parser)]
#[command(
    name = "distributed",
    after_help = "Environment:\n  EVENTSOURCE_BROKER_URL       the default of --broker\n  \
                  OTEL_SERVICE_NAME            the service name (default distributed-{role})\n  \
                  OTEL_EXPORTER_OTLP_ENDPOINT  where spans and metrics go (default: the console)\n  \
                  OTEL_EXPORTER_OTLP_*         the other OTLP settings (headers, protocol, TLS)"
)]
struct Options {
    /// What this process does.
    #[arg(long, value_enum, default_value_t = Role::Both)]
    role: Role,
    /// The broker: `amqp://user:password@host:5672/%2f` (RabbitMQ), `kafka://host:9092`
    /// (Kafka), `nats://host:4222` (NATS JetStream), or `memory` (no broker: everything in
    /// this process, role `both` only).
    #[arg(
        long,
        alias = "amqp",
        env = "EVENTSOURCE_BROKER_URL",
        hide_env_values = true,
        default_value = "memory"
    )]
    broker: String,
    /// The RabbitMQ exchange, the prefix of the Kafka topics and groups, or the NATS subject
    /// prefix (its stream: the prefix in capitals).
    #[arg(long, alias = "exchange", default_value = "eventsource")]
    prefix: String,
    /// How many orders the producer places (every other one is shipped).
    #[arg(long, default_value_t = 3)]
    orders: usize,
    /// The producer's event store: `memory`, `sqlite:PATH` or `postgres://...`.
    #[arg(long, default_value = "memory")]
    store: String,
    /// Where the consumer records the messages its idempotent handler handled: `memory`,
    /// `sqlite:PATH` or `postgres://...` (consumers replacing each other need a shared one).
    #[arg(long, default_value = "memory")]
    processed: String,
    /// The producer only stores; run it again with `--relay-only` to publish what is stored.
    #[arg(long)]
    no_relay: bool,
    /// The producer only publishes what is stored.
    #[arg(long)]
    relay_only: bool,
    /// How long the CRM update (the confirmation group's second handler) and the history's
    /// `history-seen` handler take, in ms.
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
    /// The consumer groups this process runs (consumer) or declares (producer), comma
    /// separated. `history` needs `--processed postgres://...`; `--role both` runs the
    /// default two only.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "confirmations,shipping"
    )]
    groups: Vec<GroupName>,
    /// Kafka only: how many partitions each topic gets when this process creates it
    /// (default: the broker's `num.partitions`; a topic that exists keeps its own). Records
    /// are keyed by aggregate id: an aggregate's events stay in one partition, in order,
    /// and a group's consumer processes share the partitions.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    partitions: Option<u16>,
    /// How many stored events the relay reads and publishes at a time (its checkpoint is
    /// saved after each batch).
    #[arg(long, default_value_t = 256)]
    relay_batch: usize,
    /// The PostgreSQL schema of `--store` (its events, checkpoints, claims; default `public`).
    #[arg(long)]
    store_schema: Option<String>,
    /// The relay runs until SIGTERM or SIGINT (default: until it published what was stored).
    #[arg(long)]
    follow: bool,
    /// Split the relay into N segments claimed in the `--store` database (PostgreSQL only):
    /// this process is one worker of it. Start one per process, each with the same N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    relay_segments: Option<u32>,
    /// A segmented relay's worker: its name in the claims (default: host, pid, random).
    #[arg(long)]
    worker_name: Option<String>,
    /// How long a segmented relay's worker may go without renewing its claims before the
    /// others take its segments over, in ms (default 10,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..))]
    claim_timeout_ms: Option<u64>,
}

impl Options {
    fn slow(&self) -> Duration {
        Duration::from_millis(self.slow_ms)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = <Options as clap::Parser>::parse();
    let role = match options.role {
        Role::Producer => "producer",
        Role::Consumer => "consumer",
        Role::Both => "both",
    };
    let mut telemetry = Telemetry::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        telemetry = telemetry.service_name(format!("distributed-{role}"));
    }
    let telemetry = telemetry.init();
    let outcome = run(&options)
        .await
        .map_err(|error| -> Box<dyn Error> { error });
    // Exported before exiting, on success and failure alike; an error as one line.
    support::finish(telemetry, outcome)
}

async fn run(options: &Options) -> Result<(), AnyError> {
    relaying::check(options)?;
    if options.broker == "memory" {
        if options.role != Role::Both {
            return Err(
                "--broker memory runs everything in one process: use --role both, \
                        or name a broker (`--broker amqp://...`, `kafka://host:9092`, `nats://host:4222`)"
                    .into(),
            );
        }
        println!("no broker asked for (--broker memory): running on the in-memory bus");
        return in_memory(options).await;
    }
    let defaults = [GroupName::Confirmations, GroupName::Shipping];
    if options.role == Role::Both && options.groups != defaults {
        return Err(
            "--role both runs the groups confirmations and shipping only: \
                    run the others with --role consumer"
                .into(),
        );
    }
    let broker = Broker::connect(options).await?;
    let handled = Arc::new(AtomicUsize::new(0));
    let processed = processed_messages(&options.processed).await?;
    let groups = consumer_groups(&broker, options, &handled, &processed).await?;
    for group in &groups {
        // Declared by the producer too: nothing it publishes before a consumer starts is
        // lost to it.
        group.declare().await?;
    }
    match options.role {
        Role::Producer => produce(options, broker.event_bus()).await,
        Role::Consumer => consume(groups, shutdown_signal()).await,
        Role::Both => {
            let expected = expected_messages(options.orders);
            let done = {
                let handled = Arc::clone(&handled);
                async move {
                    while handled.load(Ordering::SeqCst) < expected {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            let consuming = tokio::spawn(consume(groups, done));
            produce(options, broker.event_bus()).await?;
            consuming.await??;
            println!("every event handled: {}", handled.load(Ordering::SeqCst));
            Ok(())
        }
    }
}

/// Each order is placed, every other one shipped: the messages the groups handle.
fn expected_messages(orders: usize) -> usize {
    orders + orders.div_ceil(2)
}

/// The consumer groups of `--groups` and their handlers; each message handled by the
/// first two counts in `handled`.
async fn consumer_groups(
    broker: &Broker,
    options: &Options,
    handled: &Arc<AtomicUsize>,
    processed: &Processed,
) -> Result<Vec<Group>, AnyError> {
    let slow = options.slow();
    let mut groups = Vec::new();
    for name in &options.groups {
        groups.push(match name {
            GroupName::Confirmations => {
                let group = broker.consumer_group("confirmations", "Order.OrderPlaced");
                // In this order: the message is acknowledged once both succeeded.
                let confirmation = confirmation_handler(handled);
                group.subscribe(Idempotent::new(confirmation, Arc::clone(&processed.any)));
                group.subscribe(crm_handler(slow));
                group
            }
            GroupName::Shipping => {
                let group = broker.consumer_group("shipping", "Order.OrderShipped");
                group.subscribe(shipping_handler(handled));
                group
            }
            GroupName::History => {
                let Some(postgres) = &processed.postgres else {
                    return Err(format!(
                        "--groups history writes to PostgreSQL: it needs \
                         --processed postgres://..., not {}",
                        redact_url(&options.processed)
                    )
                    .into());
                };
                create_history_table(postgres).await?;
                let group = broker.consumer_group("history", "#");
                // The row first, exactly once; then the line of every delivery.
                group.subscribe(TransactionalIdempotent::new(
                    RecordHistory,
                    postgres.clone(),
                ));
                group.subscribe(history_seen_handler(slow));
                group
            }
        });
    }
    Ok(groups)
}

/// The history's table, in the `--processed` database: a row per event, in the order the
/// rows were written (`seq`), with the process that wrote it.
const HISTORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS event_history (
    seq BIGSERIAL PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    event_id UUID NOT NULL,
    pid INTEGER NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Creates `event_history` where missing; consumers starting together take turns (two
/// concurrent `CREATE TABLE IF NOT EXISTS` can collide in PostgreSQL's catalog).
async fn create_history_table(processed: &PostgresProcessedMessages) -> Result<(), AnyError> {
    let failed = |error: sqlx::Error| -> AnyError {
        format!("--groups history: cannot create the table event_history: {error}").into()
    };
    let mut transaction = processed.pool().begin().await.map_err(failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('event_history'))")
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
    sqlx::query(HISTORY_TABLE)
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
    transaction.commit().await.map_err(failed)?;
    Ok(())
}

/// Writes an event's row in `event_history`, in the transaction that records the message
/// (run by `TransactionalIdempotent`: exactly once per event).
struct RecordHistory;

#[eventsource_runtime::async_trait]
impl TransactionalHandler for RecordHistory {
    fn name(&self) -> &str {
        "record-history"
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        transaction: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let version = i64::try_from(event.version).map_err(HandlerError::new)?;
        let pid = i32::try_from(std::process::id()).map_err(HandlerError::new)?;
        sqlx::query(
            "INSERT INTO event_history (aggregate_type, aggregate_id, version, event_id, pid) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.aggregate_type())
        .bind(event.aggregate_id())
        .bind(version)
        .bind(event.event_id)
        .bind(pid)
        .execute(transaction)
        .await
        .map_err(HandlerError::new)?;
        // Printed before the commit: a process killed right after it prints it again
        // with its next owner, and its row was rolled back.
        println!(
            "history recorded {} v{} [message {}]",
            event.aggregate_id(),
            event.version,
            event.event_id
        );
        Ok(())
    }
}

/// Prints every delivery of the history's events (at least once: a redelivery too);
/// takes `slow`.
fn history_seen_handler(slow: Duration) -> impl EventHandler {
    handler_fn("history-seen", move |event| async move {
        tokio::time::sleep(slow).await;
        println!(
            "history seen {} v{} [message {}]",
            event.aggregate_id(),
            event.version,
            event.event_id
        );
        Ok::<(), HandlerError>(())
    })
}

/// Sends the order confirmation (run once per message: wrapped in `Idempotent`).
fn confirmation_handler(handled: &Arc<AtomicUsize>) -> impl EventHandler {
    let handled = Arc::clone(handled);
    handler_fn("send-confirmation", move |event| {
        let handled = Arc::clone(&handled);
        async move {
            let placed = event
                .decode_as::<OrderPlaced>()
                .expect("bound to OrderPlaced only")?;
            println!(
                "confirmation sent to {} for {} ({} cents) [message {}]",
                placed.customer_id,
                event.aggregate_id(),
                placed.total_cents,
                event.event_id
            );
            handled.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    })
    .only(["OrderPlaced"])
}

/// Updates the customer record (safe to run again); takes `slow`.
fn crm_handler(slow: Duration) -> impl EventHandler {
    handler_fn("update-crm", move |event| async move {
        println!(
            "updating the crm for {} [message {}]",
            event.aggregate_id(),
            event.event_id
        );
        tokio::time::sleep(slow).await;
        println!(
            "crm updated for {} [message {}]",
            event.aggregate_id(),
            event.event_id
        );
        Ok::<(), HandlerError>(())
    })
    .only(["OrderPlaced"])
}

fn shipping_handler(handled: &Arc<AtomicUsize>) -> impl EventHandler {
    let handled = Arc::clone(handled);
    handler_fn("notify-shipping", move |event| {
        let handled = Arc::clone(&handled);
        async move {
            let shipped = event
                .decode_as::<OrderShipped>()
                .expect("bound to OrderShipped only")?;
            println!(
                "shipping notified: {} leaves with {} ({}) [message {}]",
                event.aggregate_id(),
                shipped.carrier,
                shipped.tracking_number,
                event.event_id
            );
            handled.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    })
    .only(["OrderShipped"])
}

/// Runs the commands on the store, then relays what is stored to `bus`.
async fn produce(options: &Options, bus: Arc<dyn EventBus>) -> Result<(), AnyError> {
    let stores = databases::stores(&options.store, options.store_schema.as_deref()).await?;
    if !options.relay_only {
        let orders = CommandService::<Order>::new(Arc::clone(&stores.events));
        let (mut placed, mut new, mut repeated) = (0, 0, 0);
        let mut count = |duplicate: bool| {
            if duplicate {
                repeated += 1;
            } else {
                new += 1;
            }
            !duplicate
        };
        for n in 1..=options.orders {
            let id = format!("order-{n}");
            // Each command with an id: run again, it returns its first events.
            let place = sample_order(&id, "ada");
            let outcome = orders.execute_once(format!("place-{id}"), place).await?;
            if count(outcome.duplicate) {
                placed += 1;
            }
            if n % 2 == 1 {
                let ship = ShipOrder {
                    order_id: id.clone(),
                    carrier: "dhl".into(),
                };
                let outcome = orders.execute_once(format!("ship-{id}"), ship).await?;
                count(outcome.duplicate);
            }
        }
        println!(
            "stored {placed} orders ({} commands: {new} new, {repeated} already stored)",
            new + repeated
        );
    }
    if options.no_relay {
        return Ok(());
    }
    relaying::relay(options, stores, bus).await
}

/// Runs the groups until `shutdown`, each stopping gracefully.
async fn consume(
    groups: Vec<Group>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AnyError> {
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut running = Vec::new();
    let health = HealthRegistry::new();
    for group in &groups {
        group.watch(&health);
    }
    for group in groups {
        let mut stopped = stop.subscribe();
        running.push(tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.recv().await;
                })
                .await
        }));
    }
    println!("consuming");
    shutdown.await;
    let _ = stop.send(());
    // Each group stops within its stop timeout (10 s), whatever its handlers and broker do.
    for group in running {
        group.await??;
    }
    println!("consumer stopped");
    // The report asks the broker each group's lag: bounded, so that a broker that does not
    // answer cannot hold the exit.
    match tokio::time::timeout(REPORT_WITHIN, health.report()).await {
        Ok(report) => println!("{report}"),
        Err(_) => println!(
            "no health report: the broker did not answer within {} s",
            REPORT_WITHIN.as_secs()
        ),
    }
    Ok(())
}

/// How long the consumer's last health report may take.
const REPORT_WITHIN: Duration = Duration::from_secs(5);

/// SIGTERM or SIGINT. The handlers are installed by the call, not when the future is first
/// awaited: until then the default action of either signal would end the process at once,
/// without a graceful stop.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Everything in one process, on the in-memory bus.
async fn in_memory(options: &Options) -> Result<(), AnyError> {
    let handled = Arc::new(AtomicUsize::new(0));
    let bus = InMemoryEventBus::new().with_destination("orders");
    let processed = InMemoryProcessedMessages::new();
    bus.subscribe(Idempotent::new(confirmation_handler(&handled), processed));
    bus.subscribe(crm_handler(options.slow()));
    bus.subscribe(shipping_handler(&handled));
    produce(options, Arc::new(bus)).await?;
    println!("every event handled: {}", handled.load(Ordering::SeqCst));
    Ok(())
}
