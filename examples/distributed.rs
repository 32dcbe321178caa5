//! One trace across processes: orders placed and shipped in a producer, their events
//! published through RabbitMQ by a relay (the store is the outbox), handled in a consumer by
//! two consumer groups: `confirmations` (sends an order confirmation) and `shipping`
//! (notifies the shipping department).
//!
//! ```text
//! cargo run --example distributed --features rabbitmq -- --role both
//! cargo run --example distributed --features rabbitmq -- --role consumer &
//! cargo run --example distributed --features rabbitmq -- --role producer
//! ```
//!
//! Options: `--role producer|consumer|both` (default `both`), `--amqp URL` (default
//! `EVENTSOURCE_AMQP_URL`, then `amqp://guest:guest@127.0.0.1:5672/%2f`), `--exchange NAME`
//! (default `eventsource`), `--orders N` (default 3), `--store memory|sqlite:PATH|postgres://..`
//! (the producer's store, default `memory`), `--no-relay` (the producer only stores: run it
//! again with `--relay-only` to publish what is stored), `--processed
//! memory|sqlite:PATH|postgres://..` (where the consumer records the messages its idempotent
//! confirmation handler handled, default `memory`: enough in one process; consumers that
//! replace each other need a shared database to recognise what another one handled), `--slow-ms MS` (the CRM update, the
//! confirmation group's second handler, takes that long).
//!
//! - `producer` runs the commands on its store, then relays every stored event to the broker
//!   and exits once the broker confirmed them all.
//! - `consumer` consumes until SIGTERM or SIGINT, then shuts down gracefully (the message
//!   being handled finishes and is settled).
//! - `both` does both in one process and stops once every event was handled.
//!
//! Effectively once: the producer gives each command an id (`execute_once`), so running a
//! command again after an uncertain outcome returns its first events; the confirmation is
//! sent by an idempotent handler (`bus::Idempotent`), so a message redelivered after the
//! consumer died (between the confirmation and the acknowledgement, say during the slow CRM
//! update) is acknowledged without a second confirmation: its handle span says
//! `eventsource.handler.duplicate=true`.
//!
//! Each process calls `telemetry::init()`: `OTEL_SERVICE_NAME` (default
//! `distributed-{role}`) and `OTEL_EXPORTER_OTLP_*` apply. Without a reachable broker it says
//! so in one line and runs on the in-memory bus, in one process.

#[path = "domain/order.rs"]
mod domain;

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::{Order, OrderPlaced, OrderShipped, ShipOrder, sample_order};
use eventsource_runtime::bus::{
    EventBus, HandlerError, Idempotent, InMemoryProcessedMessages, ProcessedMessages, handler_fn,
};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus};
use eventsource_runtime::relay::Relay;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::telemetry::Telemetry;

/// Any error, from any task.
type AnyError = Box<dyn Error + Send + Sync>;

const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
    Both,
}

#[derive(Debug)]
struct Options {
    role: Role,
    amqp: String,
    exchange: String,
    orders: usize,
    store: String,
    processed: String,
    relay: bool,
    produce: bool,
    slow: Duration,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        role: Role::Both,
        amqp: std::env::var("EVENTSOURCE_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP.to_owned()),
        exchange: "eventsource".to_owned(),
        orders: 3,
        store: "memory".to_owned(),
        processed: "memory".to_owned(),
        relay: true,
        produce: true,
        slow: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--role" => {
                options.role = match value("--role")?.as_str() {
                    "producer" => Role::Producer,
                    "consumer" => Role::Consumer,
                    "both" => Role::Both,
                    other => return Err(format!("unknown role `{other}`: producer|consumer|both")),
                }
            }
            "--amqp" => options.amqp = value("--amqp")?,
            "--exchange" => options.exchange = value("--exchange")?,
            "--orders" => {
                options.orders = value("--orders")?
                    .parse()
                    .map_err(|e| format!("--orders: {e}"))?;
            }
            "--store" => options.store = value("--store")?,
            "--processed" => options.processed = value("--processed")?,
            "--no-relay" => options.relay = false,
            "--relay-only" => options.produce = false,
            "--slow-ms" => {
                let ms: u64 = value("--slow-ms")?
                    .parse()
                    .map_err(|e| format!("--slow-ms: {e}"))?;
                options.slow = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let options = options()?;
    let role = match options.role {
        Role::Producer => "producer",
        Role::Consumer => "consumer",
        Role::Both => "both",
    };
    let mut telemetry = Telemetry::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        telemetry = telemetry.service_name(format!("distributed-{role}"));
    }
    let _telemetry = telemetry.init();

    let bus = RabbitMqBus::new(&options.amqp)?.with_exchange(&options.exchange);
    if let Err(error) = bus.declare().await {
        println!(
            "no broker at {} ({error}): running on the in-memory bus",
            options.amqp
        );
        return in_memory(&options).await;
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let processed = processed_messages(&options.processed).await?;
    let groups = consumer_groups(&bus, &handled, &processed, options.slow);
    for group in &groups {
        // Declared by the producer too: nothing it publishes before a consumer starts is
        // unroutable.
        group.declare().await?;
    }
    match options.role {
        Role::Producer => produce(&options, Arc::new(bus)).await,
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
            produce(&options, Arc::new(bus)).await?;
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

/// The two consumer groups and their handlers; each handled message counts in `handled`.
fn consumer_groups(
    bus: &RabbitMqBus,
    handled: &Arc<AtomicUsize>,
    processed: &Arc<dyn ProcessedMessages>,
    slow: Duration,
) -> [ConsumerGroup; 2] {
    let confirmations = bus
        .consumer_group("confirmations")
        .bind("Order.OrderPlaced");
    // In this order: the message is acknowledged once both succeeded.
    let confirmation = confirmation_handler(handled);
    confirmations.subscribe(Idempotent::new(confirmation, Arc::clone(processed)));
    confirmations.subscribe(crm_handler(slow));
    let shipping = bus.consumer_group("shipping").bind("Order.OrderShipped");
    shipping.subscribe(shipping_handler(handled));
    [confirmations, shipping]
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
    let (store, checkpoints) = stores(&options.store).await?;
    if options.produce {
        let orders = CommandService::<Order>::new(Arc::clone(&store));
        for n in 1..=options.orders {
            let id = format!("order-{n}");
            // Each command with an id: run again, it returns its first events.
            let place = sample_order(&id, "ada");
            orders.execute_once(format!("place-{id}"), place).await?;
            if n % 2 == 1 {
                let ship = ShipOrder {
                    order_id: id.clone(),
                    carrier: "dhl".into(),
                };
                orders.execute_once(format!("ship-{id}"), ship).await?;
            }
        }
        println!("stored {} orders", options.orders);
    }
    if !options.relay {
        return Ok(());
    }
    let relay = Relay::new(store, checkpoints, bus);
    let position = relay.run_until_caught_up().await?;
    println!("published every stored event, up to position {position}");
    Ok(())
}

/// A database named on the command line (`--store`, `--processed`).
enum Database {
    Memory,
    Sqlite(SqliteEventStore),
    Postgres(PostgresEventStore),
}

impl Database {
    /// `memory`, `sqlite:PATH` or `postgres://...`, opened and migrated.
    async fn open(option: &str, spec: &str) -> Result<Self, AnyError> {
        if spec == "memory" {
            return Ok(Self::Memory);
        }
        if spec.starts_with("sqlite:") {
            let store = SqliteEventStore::connect(spec).await?;
            store.migrate().await?;
            return Ok(Self::Sqlite(store));
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let store = PostgresEventStore::connect(spec).await?;
            store.migrate().await?;
            return Ok(Self::Postgres(store));
        }
        Err(format!("{option} {spec}: expected `memory`, `sqlite:PATH` or `postgres://...`").into())
    }
}

/// The producer's event store and the relay's checkpoints, from `--store`.
async fn stores(spec: &str) -> Result<(Arc<dyn EventStore>, Arc<dyn CheckpointStore>), AnyError> {
    Ok(match Database::open("--store", spec).await? {
        Database::Memory => (
            Arc::new(InMemoryEventStore::new()),
            Arc::new(InMemoryCheckpointStore::new()),
        ),
        Database::Sqlite(store) => {
            let checkpoints = store.checkpoint_store();
            (Arc::new(store), Arc::new(checkpoints))
        }
        Database::Postgres(store) => {
            let checkpoints = store.checkpoint_store();
            (Arc::new(store), Arc::new(checkpoints))
        }
    })
}

/// Where the consumer records the messages its idempotent handler handled, from
/// `--processed`.
async fn processed_messages(spec: &str) -> Result<Arc<dyn ProcessedMessages>, AnyError> {
    Ok(match Database::open("--processed", spec).await? {
        Database::Memory => Arc::new(InMemoryProcessedMessages::new()),
        Database::Sqlite(store) => Arc::new(store.processed_messages()),
        Database::Postgres(store) => Arc::new(store.processed_messages()),
    })
}

/// Runs the groups until `shutdown`, each stopping gracefully.
async fn consume(
    groups: [ConsumerGroup; 2],
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AnyError> {
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut running = Vec::new();
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
    for group in running {
        group.await??;
    }
    println!("consumer stopped");
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Everything in one process, on the in-memory bus.
async fn in_memory(options: &Options) -> Result<(), AnyError> {
    let handled = Arc::new(AtomicUsize::new(0));
    let bus = InMemoryEventBus::new().with_destination("orders");
    let processed = InMemoryProcessedMessages::new();
    bus.subscribe(Idempotent::new(confirmation_handler(&handled), processed));
    bus.subscribe(crm_handler(options.slow));
    bus.subscribe(shipping_handler(&handled));
    produce(options, Arc::new(bus)).await?;
    println!("every event handled: {}", handled.load(Ordering::SeqCst));
    Ok(())
}
