//! Something for an operator's tools to show, without writing code: a day of orders in a
//! store, a projection behind, an event from newer code parked, a projection split into
//! segments, a projection whose runner stopped on a failing handler and, with a broker, a
//! dead letter. Then `eventsource status` and the console
//! read it (docs/guide/operating.md):
//!
//! ```sh
//! cargo run --features rabbitmq --example operator -- --broker amqp://guest:guest@localhost:5672/%2f
//! cargo run -p eventsource-runtime --features cli,sqlite,postgres,rabbitmq --bin eventsource -- \
//!     --store sqlite:target/operator.db console --admin-token operator-secret \
//!     --broker amqp://guest:guest@localhost:5672/%2f --group operator-billing
//! ```
//!
//! - `--store sqlite:PATH` (default `sqlite:target/operator.db`, made anew at each run) or
//!   `--store postgres://...` (with `--schema NAME`, default `operator`: each run adds to
//!   it);
//! - `--broker amqp://...`: the RabbitMQ group `operator-billing` (on the bus's default
//!   exchange), whose handler fails on a cancelled order: one dead letter a run. Without
//!   it, no dead letters.

#[path = "domain/order.rs"]
mod domain;
#[path = "support/exit.rs"]
mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use domain::{
    CancelOrder, Order, OrderCancelled, OrderPlaced, OrderShipped, ShipOrder, sample_order,
};
use eventsource_runtime::event::{Metadata, NewEvent, Payload};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, UnreadablePolicy};
use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentClaims};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use eventsource_runtime::telemetry::secrets::redact_url;

/// The store a run writes to, unless `--store` names another.
const DEFAULT_STORE: &str = "sqlite:target/operator.db";

/// Revenue per customer: a projection its runner keeps a checkpoint for.
#[derive(Debug, Default)]
struct Revenue {
    cents: BTreeMap<String, u64>,
}

#[projection(projection_name = "revenue")]
impl Revenue {
    fn on_placed(&mut self, placed: &OrderPlaced, _: &EventEnvelope) {
        *self.cents.entry(placed.customer_id.clone()).or_default() += placed.total_cents;
    }
}

/// Shipments per carrier: split into two segments, each with a checkpoint of its own.
#[derive(Debug, Default)]
struct Shipments {
    by_carrier: BTreeMap<String, u64>,
}

#[projection(projection_name = "shipments")]
impl Shipments {
    fn on_shipped(&mut self, shipped: &OrderShipped, _: &EventEnvelope) {
        *self.by_carrier.entry(shipped.carrier.clone()).or_default() += 1;
    }
}

/// Refunds per customer, whose handler is written to fail on a cancellation (the refund
/// service it would call is down): its runner stops and records why.
#[derive(Debug, Default)]
struct Refunds;

#[projection(projection_name = "refunds")]
impl Refunds {
    fn on_cancelled(
        &mut self,
        _: &OrderCancelled,
        _: &EventEnvelope,
    ) -> Result<(), Box<dyn Error + Send + Sync>> {
        Err("the refund service is down (connection refused)".into())
    }
}

/// What the command line gave.
struct Options {
    store: String,
    schema: String,
    broker: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, Box<dyn Error>> {
        let mut options = Self {
            store: DEFAULT_STORE.to_owned(),
            schema: "operator".to_owned(),
            broker: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--store" => options.store = value()?,
                "--schema" => options.schema = value()?,
                "--broker" => options.broker = Some(value()?),
                other => {
                    return Err(format!(
                        "unknown argument `{other}`: give --store URL, --schema NAME, --broker URL"
                    )
                    .into());
                }
            }
        }
        Ok(options)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = eventsource_runtime::telemetry::init();
    let outcome = run().await;
    support::finish(telemetry, outcome)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let options = Options::parse()?;
    let (store, checkpoints, claims) = open(&options).await?;

    // A morning of orders: twelve placed, eight shipped, one cancelled.
    let orders = CommandService::<Order>::new(Arc::clone(&store));
    let mut placed = Vec::new();
    for n in 1..=12 {
        let customer = ["ada", "grace", "edsger"][n % 3];
        let outcome = orders
            .execute(sample_order(&format!("o-{n}"), customer))
            .await?;
        placed.extend(outcome.events.into_iter().next());
    }
    // Each shipment in its order's request, caused by the placement (the causation tree).
    for (n, placement) in (1..=8).zip(&placed) {
        let ship = ShipOrder {
            order_id: format!("o-{n}"),
            carrier: ["DHL", "UPS"][n % 2].to_owned(),
        };
        let mut metadata =
            Metadata::new().with(Metadata::CAUSATION_ID, placement.event_id.to_string());
        if let Some(correlation) = placement.metadata.correlation_id() {
            metadata.insert(Metadata::CORRELATION_ID, correlation);
        }
        orders.execute_with_metadata(ship, metadata).await?;
    }
    let cancel = CancelOrder {
        order_id: "o-12".to_owned(),
        reason: "changed their mind".to_owned(),
    };
    orders.execute(cancel).await?;

    // A newer release wrote an order at schema version 2, which this code cannot read.
    let newer = NewEvent::new(
        "OrderPlaced",
        2,
        Payload::from_json(r#"{"customer_id":"ada","lines":[],"currency":"EUR"}"#)?,
    );
    let stream = StreamId::new("Order", "o-from-a-newer-release");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![newer])
        .await?;

    // `revenue`: caught up, the unreadable event parked; then the afternoon's orders,
    // which it has not read yet (its lag).
    let revenue = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::clone(&checkpoints),
        Revenue::default(),
    )
    .on_unreadable(UnreadablePolicy::Park);
    revenue.run_until_caught_up().await?;
    for n in 13..=17 {
        orders
            .execute(sample_order(&format!("o-{n}"), "barbara"))
            .await?;
    }

    // `shipments`: split into two segments, each caught up under its own checkpoint.
    let shipments = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::clone(&checkpoints),
        Shipments::default(),
    )
    .segmented(claims, 2);
    shipments.run_until_caught_up().await?;

    // `refunds`: its handler fails on the cancellation, twice; the runner stops and
    // records why, for `status` and the console.
    let refunds = ProjectionRunner::new(Arc::clone(&store), Arc::clone(&checkpoints), Refunds)
        .max_attempts(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(10));
    let stopped = refunds.run_until_caught_up().await.err();
    let stopped = stopped.ok_or("`refunds` was to stop on the cancellation")?;

    let dead_letters = match &options.broker {
        Some(url) => broker::dead_letter_a_cancellation(&*store, url).await?,
        None => "no broker given: no dead letters".to_owned(),
    };

    let target = match options.store.starts_with("postgres") {
        true => format!("{} --schema {}", redact_url(&options.store), options.schema),
        false => options.store.clone(),
    };
    println!(
        "stored: {} events; `revenue` caught up, one event parked, then 5 orders behind; \
         `shipments` split in 2 segments; `refunds` stopped ({stopped}); {dead_letters}",
        store.head_position().await?.unwrap_or(0)
    );
    println!(
        "next: cargo run -p eventsource-runtime --features cli,sqlite,postgres,rabbitmq --bin \
         eventsource -- --store {target} status (or `console --admin-token operator-secret`)"
    );
    Ok(())
}

/// The store `--store` names, migrated; its checkpoints; where split projections' segments
/// are claimed (PostgreSQL keeps them; SQLite's live in this process).
async fn open(
    options: &Options,
) -> Result<
    (
        Arc<dyn EventStore>,
        Arc<dyn CheckpointStore>,
        Arc<dyn SegmentClaims>,
    ),
    Box<dyn Error>,
> {
    let spec = options.store.as_str();
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let store = PostgresEventStore::connect(spec)
            .await?
            .with_schema(&options.schema)?;
        store.migrate().await?;
        let checkpoints = Arc::new(store.checkpoint_store());
        return Ok((Arc::new(store), checkpoints.clone(), checkpoints));
    }
    let Some(file) = spec.strip_prefix("sqlite:") else {
        return Err(format!(
            "--store {}: give sqlite:PATH or postgres://...",
            redact_url(spec)
        )
        .into());
    };
    // A run makes the file anew: what the tools show is this run's.
    let _ = std::fs::remove_file(file);
    if let Some(folder) = std::path::Path::new(file).parent() {
        std::fs::create_dir_all(folder)?;
    }
    let store = SqliteEventStore::connect(&format!("sqlite:{file}?mode=rwc")).await?;
    store.migrate().await?;
    let checkpoints = Arc::new(store.checkpoint_store());
    Ok((
        Arc::new(store),
        checkpoints,
        Arc::new(InMemorySegmentClaims::new()),
    ))
}

/// The dead letter, on RabbitMQ (the `rabbitmq` feature of this package).
#[cfg(feature = "rabbitmq")]
mod broker {
    use std::error::Error;
    use std::time::Duration;

    use eventsource_runtime::bus::{HandlerError, Subscribe};
    use eventsource_runtime::prelude::*;
    use eventsource_runtime::rabbitmq::RabbitMqBus;
    use eventsource_runtime::store::EventStore;

    /// The consumer group that dead-letters a cancelled order.
    const GROUP: &str = "operator-billing";

    /// Publishes the store's events to the group `operator-billing`, whose handler fails on a
    /// cancelled order and has no retry: that one becomes a dead letter. Returns what it did.
    pub async fn dead_letter_a_cancellation(
        store: &dyn EventStore,
        url: &str,
    ) -> Result<String, Box<dyn Error>> {
        let bus = RabbitMqBus::new(url)?;
        let group = bus.consumer_group(GROUP).retry_delays(Vec::new());
        group.subscribe_fn("billing", |event| async move {
            if event.event_type == "OrderCancelled" {
                return Err(HandlerError::new(
                    "billing: the refund service answered 503",
                ));
            }
            Ok::<(), HandlerError>(())
        });
        group.declare().await?;
        let dead = group.dead_letters();
        let before = dead.count().await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn({
            let group = group.clone();
            async move { group.run(async { drop(stopped.await) }).await }
        });
        let events = store.read_all(1, usize::MAX).await?.into_parts().0;
        bus.publish(&events).await?;
        let mut waited = Duration::ZERO;
        while dead.count().await? == before {
            if waited >= Duration::from_secs(30) {
                return Err(format!("no dead letter in {GROUP} after 30 s").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        let _ = stop.send(());
        running.await??;
        Ok(format!(
            "one more dead letter in `{GROUP}` ({})",
            dead.count().await?
        ))
    }
}

/// Without the `rabbitmq` feature: says how to build the example with it.
#[cfg(not(feature = "rabbitmq"))]
mod broker {
    use std::error::Error;

    use eventsource_runtime::store::EventStore;

    pub async fn dead_letter_a_cancellation(
        _: &dyn EventStore,
        _: &str,
    ) -> Result<String, Box<dyn Error>> {
        Err(
            "--broker: this example was built without RabbitMQ; run it with \
             `cargo run --features rabbitmq --example operator`"
                .into(),
        )
    }
}
