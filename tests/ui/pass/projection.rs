//! `#[projection]` with every handler shape, helpers left alone, every argument, and a
//! generic projection.

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub total_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled;

#[derive(Default, Aggregate)]
#[aggregate(type = "Order", events(OrderPlaced, OrderShipped, OrderCancelled))]
pub struct Order;

impl<E> Apply<E> for Order {
    fn apply(&mut self, _: &E) {}
}

#[derive(Debug, thiserror::Error)]
#[error("nothing to ship")]
pub struct NothingToShip;

#[derive(Default)]
pub struct OrderTotals {
    total_cents: u64,
    shipped: u32,
    trace: bool,
}

#[projection(name = "projection.totals", projection_name = "Totals", enable_tracing = self.trace)]
impl OrderTotals {
    /// A constructor: left alone.
    pub fn traced() -> Self {
        Self {
            trace: true,
            ..Self::default()
        }
    }

    fn on_placed(&mut self, event: &OrderPlaced) {
        self.total_cents += event.total_cents;
    }

    async fn on_shipped(
        &mut self,
        _: &OrderShipped,
        envelope: &EventEnvelope,
    ) -> Result<(), NothingToShip> {
        if envelope.version < 2 {
            return Err(NothingToShip);
        }
        self.shipped += 1;
        Ok(())
    }

    fn on_cancelled(self: &mut Self, _: &OrderCancelled) -> () {}

    /// A `&self` helper: left alone.
    pub fn total_cents(&self) -> u64 {
        self.total_cents
    }
}

pub struct Tagged<T> {
    pub tag: T,
    pub seen: u32,
}

#[projection]
impl<T: Send + 'static> Tagged<T> {
    async fn on_placed(&mut self, _: &OrderPlaced) {
        self.seen += 1;
    }
}

fn main() {
    let totals = OrderTotals::traced();
    assert_eq!(totals.name(), "Totals");
    assert_eq!(totals.span_name(), Some("projection.totals"));
    assert!(totals.tracing_enabled());
    assert!(!OrderTotals::default().tracing_enabled());
    assert!(totals.handles("OrderPlaced") && totals.handles("OrderCancelled"));
    assert!(!totals.handles("OrderRefunded"));

    let tagged = Tagged { tag: "t", seen: 0 };
    assert_eq!(tagged.name(), "Tagged");
    assert_eq!(tagged.span_name(), None);
    assert!(!tagged.tracing_enabled());

    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let store = InMemoryEventStore::new();
            let events = vec![
                NewEvent::from_event(&OrderEvent::from(OrderPlaced { total_cents: 5 })).unwrap(),
                NewEvent::from_event(&OrderEvent::from(OrderShipped)).unwrap(),
            ];
            let saved = store
                .append(&StreamId::new("Order", "o-1"), ExpectedVersion::NoStream, events)
                .await
                .unwrap();
            let registry = ProjectionRegistry::new();
            let totals = registry.register(OrderTotals::default());
            let tagged = registry.register(tagged);
            assert!(registry.deliver(&saved.events).await.is_empty());
            assert_eq!(totals.lock().await.total_cents(), 5);
            assert_eq!(totals.lock().await.shipped, 1);
            assert_eq!(tagged.lock().await.seen, 1);
            assert_eq!(tagged.lock().await.tag, "t");
        });
}
