//! The order flow: place, ship and cancel orders against an in-memory event store, with an
//! `OrderReadModel` projection fed as events are saved.
//!
//! Run it with `cargo run --example orders` (traces on stderr), or send them to a
//! collector: `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --example orders`.

#[path = "domain/order.rs"]
mod domain;

use domain::{CancelOrder, Order, OrderReadModel, ShipOrder, sample_order};
use eventsource_runtime::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each command's trace on stderr; with OTEL_EXPORTER_OTLP_ENDPOINT set, to a collector.
    let _telemetry = eventsource_runtime::telemetry::init();
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let read_model = orders.register(OrderReadModel {
        trace: true,
        ..OrderReadModel::default()
    });

    // Place two orders, ship one, cancel the other.
    for (order_id, customer) in [("order-1", "ada"), ("order-2", "grace")] {
        let outcome = orders.execute(sample_order(order_id, customer)).await?;
        report(&format!("PlaceOrder {order_id}"), &outcome.events);
    }
    let shipped = orders
        .execute(ShipOrder {
            order_id: "order-1".into(),
            carrier: "dhl".into(),
        })
        .await?;
    report("ShipOrder order-1", &shipped.events);
    let cancelled = orders
        .execute(CancelOrder {
            order_id: "order-2".into(),
            reason: "customer changed their mind".into(),
        })
        .await?;
    report("CancelOrder order-2", &cancelled.events);

    // A command the aggregate refuses: nothing is stored.
    match orders
        .execute(ShipOrder {
            order_id: "order-2".into(),
            carrier: "ups".into(),
        })
        .await
    {
        Err(CommandError::Rejected(reason)) => println!("ShipOrder order-2 -> rejected: {reason}"),
        other => println!("ShipOrder order-2 -> unexpected: {other:?}"),
    }

    // Rebuild an aggregate from its stream.
    let order_1 = orders.repository().load("order-1").await?;
    println!(
        "\norder-1 replayed: version {}, status {:?}, total {} cents",
        order_1.version(),
        order_1.state().status,
        order_1.state().total_cents
    );

    println!("\nread model (OrderReadModel):");
    for (id, view) in &read_model.lock().await.orders {
        println!(
            "  {id}: {:?}, customer {}, {} cents (position {})",
            view.status, view.customer_id, view.total_cents, view.last_position
        );
    }
    println!("\nthe store holds {} events", store.len());
    Ok(())
}

fn report(what: &str, events: &[EventEnvelope]) {
    let stored: Vec<String> = events
        .iter()
        .map(|e| format!("{} v{} @{}", e.event_type, e.version, e.position))
        .collect();
    println!("{what} -> {}", stored.join(", "));
}
