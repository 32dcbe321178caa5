//! The order flow: place, ship and cancel orders, with an `OrderReadModel` projection fed
//! as events are saved, and an in-memory event bus on which a `send-confirmation` handler
//! confirms each placed order (command -> publish -> consume -> handle, in one trace).
//!
//! Run it with `cargo run --example orders` (in memory; each command's trace on stderr).
//! - `EVENTSOURCE_STORE` picks the store: `memory` (default), `sqlite:orders.db` (run it
//!   twice: the second run sees the first run's orders) or `postgres://user@host/db`.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318` sends the traces to a collector.

#[path = "domain/order.rs"]
mod domain;
#[path = "support/exit.rs"]
mod support;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use domain::{CancelOrder, Order, OrderPlaced, OrderReadModel, ShipOrder, sample_order};
use eventsource_runtime::bus::HandlerError;
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::{StoreError, UNBOUNDED};
use eventsource_runtime::telemetry::secrets::redact_url;

/// The variable that picks the store.
const STORE_VAR: &str = "EVENTSOURCE_STORE";

#[tokio::main]
async fn main() -> ExitCode {
    // Each command's trace on stderr; with OTEL_EXPORTER_OTLP_ENDPOINT set, to a collector.
    let telemetry = eventsource_runtime::telemetry::init();
    let outcome = run().await;
    // Exported before exiting; an error printed as one line, its causes once.
    support::finish(telemetry, outcome)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let store = store_from_env().await?;

    // The bus: each saved event is published after the save; the handler reacts to new
    // orders (here it prints; a real one would send an e-mail).
    let bus = InMemoryEventBus::new().with_destination("orders");
    bus.subscribe(
        handler_fn("send-confirmation", |event| async move {
            let placed = event
                .decode_as::<OrderPlaced>()
                .expect("only OrderPlaced")?;
            println!(
                "  confirmation sent to {} for {} ({} cents)",
                placed.customer_id,
                event.aggregate_id(),
                placed.total_cents
            );
            Ok::<(), HandlerError>(())
        })
        .only(["OrderPlaced"]),
    );

    let orders = CommandService::with_repository(
        Repository::<Order>::from_arc(Arc::clone(&store)),
        ProjectionRegistry::new(),
    )
    .with_bus(bus.clone());
    let read_model = orders.register(OrderReadModel {
        trace: true,
        ..OrderReadModel::default()
    });

    // Catch the read model up with what earlier runs stored (nothing, in memory).
    let earlier = store.read_all(1, UNBOUNDED).await?;
    orders.projections().deliver(&earlier).await;
    let known = read_model.lock().await.orders.len();
    println!(
        "{} store: {} events and {known} orders from earlier runs",
        store.system_name(),
        earlier.len()
    );

    // Place two orders, ship one, cancel the other.
    let (first, second) = (
        format!("order-{}", known + 1),
        format!("order-{}", known + 2),
    );
    for (order_id, customer) in [(&first, "ada"), (&second, "grace")] {
        let outcome = orders.execute(sample_order(order_id, customer)).await?;
        report(&format!("PlaceOrder {order_id}"), &outcome.events);
    }
    let shipped = orders
        .execute(ShipOrder {
            order_id: first.clone(),
            carrier: "dhl".into(),
        })
        .await?;
    report(&format!("ShipOrder {first}"), &shipped.events);
    let cancelled = orders
        .execute(CancelOrder {
            order_id: second.clone(),
            reason: "customer changed their mind".into(),
        })
        .await?;
    report(&format!("CancelOrder {second}"), &cancelled.events);

    // A command the aggregate refuses: nothing is stored.
    match orders
        .execute(ShipOrder {
            order_id: second.clone(),
            carrier: "ups".into(),
        })
        .await
    {
        Err(CommandError::Rejected(reason)) => println!("ShipOrder {second} -> rejected: {reason}"),
        other => println!("ShipOrder {second} -> unexpected: {other:?}"),
    }

    // Rebuild an aggregate from its stream.
    let replayed = orders.repository().load(first.as_str()).await?;
    println!(
        "\n{first} replayed: version {}, status {:?}, total {} cents",
        replayed.version(),
        replayed.state().status,
        replayed.state().total_cents
    );

    // The read side: a query span `query.ListOrders` and the `cqrs.query.*` metrics.
    let listed = eventsource_runtime::query::run_collection("ListOrders", async {
        Ok::<_, std::convert::Infallible>(read_model.lock().await.orders.clone())
    })
    .await?;
    println!("\nread model (OrderReadModel):");
    for (id, view) in &listed {
        println!(
            "  {id}: {:?}, customer {}, {} cents (position {})",
            view.status, view.customer_id, view.total_cents, view.last_position
        );
    }
    let stored = store.read_all(1, UNBOUNDED).await?.len();
    println!("\nthe store holds {stored} events");
    println!("dead letters on the bus: {}", bus.dead_letters().len());
    Ok(())
}

/// The store `EVENTSOURCE_STORE` names, migrated and ready.
async fn store_from_env() -> Result<Arc<dyn EventStore>, Box<dyn Error>> {
    let spec = std::env::var(STORE_VAR).unwrap_or_default();
    let spec = spec.trim();
    // Which store failed, its password shown as `***`.
    let failed = |error: StoreError| -> Box<dyn Error> {
        format!(
            "{STORE_VAR}={}: {}",
            redact_url(spec),
            support::chain(&error)
        )
        .into()
    };
    if spec.is_empty() || spec == "memory" {
        return Ok(Arc::new(InMemoryEventStore::new()));
    }
    if spec.starts_with("sqlite:") {
        let store = SqliteEventStore::connect(spec).await.map_err(failed)?;
        store.migrate().await.map_err(failed)?;
        return Ok(Arc::new(store));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let store = PostgresEventStore::connect(spec).await.map_err(failed)?;
        store.migrate().await.map_err(failed)?;
        return Ok(Arc::new(store));
    }
    Err(format!(
        "{STORE_VAR}={}: expected `memory`, `sqlite:PATH` or `postgres://...`",
        redact_url(spec)
    )
    .into())
}

fn report(what: &str, events: &[EventEnvelope]) {
    let stored: Vec<String> = events
        .iter()
        .map(|e| format!("{} v{} @{}", e.event_type, e.version, e.position))
        .collect();
    println!("{what} -> {}", stored.join(", "));
}
