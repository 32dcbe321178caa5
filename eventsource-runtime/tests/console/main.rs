//! The console as users meet it: its router called directly (`api.rs`: reads, bad input,
//! the admin token, cross-site requests, the action spans against the contract), the page
//! in a real browser over SQLite and RabbitMQ (`browser.rs`), and `eventsource console`
//! started as an operator starts it (`command.rs`).

mod api;
mod browser;
mod command;

use std::path::PathBuf;
use std::sync::Arc;

use eventsource_runtime::event::{Metadata, NewEvent, StreamId};
use eventsource_runtime::operate::Stores;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ParkedEvent};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use serde_json::json;

/// The trace ids of the seeded request's two services.
pub const TRACE_ORDERS: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const TRACE_SHIPPING: &str = "0af7651916cd43dd8448eb211c80319c";
/// The admin token of the consoles under test.
pub const TOKEN: &str = "test-admin-token-7f3a";

/// A SQLite file in a fresh directory, removed on drop.
pub struct Seeded {
    pub store: SqliteEventStore,
    dir: PathBuf,
}

impl Seeded {
    /// The SQLite file.
    pub fn file(&self) -> PathBuf {
        self.dir.join("events.db")
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Seeded {
    pub fn stores(&self) -> Stores {
        Stores::sqlite(&self.store)
    }

    pub fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.store.checkpoint_store())
    }
}

fn event(kind: &str, correlation: Option<&str>, causation: Option<&str>, trace: &str) -> NewEvent {
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let mut metadata = Metadata::new().with(Metadata::TRACEPARENT, traceparent);
    if let Some(correlation) = correlation {
        metadata.insert(Metadata::CORRELATION_ID, correlation);
    }
    if let Some(causation) = causation {
        metadata.insert(Metadata::CAUSATION_ID, causation);
    }
    NewEvent::new(kind.to_owned(), 1, json!({ "kind": kind })).with_metadata(metadata)
}

/// Six events: request `req-1` placed and paid order o-1 (positions 1, 2), which asked
/// for shipment s-1 (3) in another service's trace; `req-2` placed and cancelled o-2 (4,
/// 5); o-3 placed without a correlation (6). The projection `orders` handled up to 2 and
/// parked 1; the relay handled everything.
pub async fn seeded(name: &str) -> Seeded {
    let dir = std::env::temp_dir().join(format!(
        "eventsource-console-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.db");
    let store = SqliteEventStore::connect(file.to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let placed = event("OrderPlaced", Some("req-1"), Some("req-1"), TRACE_ORDERS);
    let paid_cause = placed.event_id.to_string();
    let paid = event("OrderPaid", Some("req-1"), Some(&paid_cause), TRACE_ORDERS);
    let shipment_cause = paid.event_id.to_string();
    let shipment = event(
        "ShipmentRequested",
        Some("req-1"),
        Some(&shipment_cause),
        TRACE_SHIPPING,
    );
    let appends = [
        (StreamId::new("Order", "o-1"), vec![placed, paid]),
        (StreamId::new("Shipment", "s-1"), vec![shipment]),
        (
            StreamId::new("Order", "o-2"),
            vec![
                event("OrderPlaced", Some("req-2"), Some("req-2"), TRACE_ORDERS),
                event("OrderCancelled", Some("req-2"), Some("req-2"), TRACE_ORDERS),
            ],
        ),
        (
            StreamId::new("Order", "o-3"),
            vec![event("OrderPlaced", None, None, TRACE_ORDERS)],
        ),
    ];
    for (stream, events) in appends {
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
    let checkpoints = store.checkpoint_store();
    checkpoints.save("orders", 2).await.unwrap();
    checkpoints
        .park("orders", &ParkedEvent::new(1, "metadata: invalid type"))
        .await
        .unwrap();
    checkpoints.save("eventsource.relay", 6).await.unwrap();
    Seeded { store, dir }
}

/// Appends to `billing` (another service's store) the invoice of `req-1`'s shipment in
/// `seeded`: one more event of the request, caused by one in the other store.
pub async fn invoice_the_shipment(seeded: &Seeded, billing: &dyn EventStore) {
    let shipment = seeded
        .store
        .events_by_correlation("req-1")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "ShipmentRequested")
        .unwrap();
    let cause = shipment.event_id.to_string();
    billing
        .append(
            &StreamId::new("Invoice", "i-1"),
            ExpectedVersion::NoStream,
            vec![event(
                "InvoiceIssued",
                Some("req-1"),
                Some(&cause),
                TRACE_SHIPPING,
            )],
        )
        .await
        .unwrap();
}

/// The positions `projection` has parked.
pub async fn parked_positions(checkpoints: &dyn CheckpointStore, projection: &str) -> Vec<u64> {
    let parked = checkpoints.parked(projection).await.unwrap();
    parked.iter().map(|p| p.position).collect()
}
