//! Events defined in another module, listed by path.

use eventsource_runtime::{Aggregate, aggregate::{Aggregate, Apply}, event::{DomainEvent, EventType}};

mod events {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct OrderPlaced {
        pub total_cents: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct OrderShipped;
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(
    type = "Order",
    events(crate::events::OrderPlaced, crate::events::OrderShipped)
)]
pub struct Order {
    total_cents: u64,
    shipped: bool,
}

impl Apply<events::OrderPlaced> for Order {
    fn apply(&mut self, event: &events::OrderPlaced) {
        self.total_cents = event.total_cents;
    }
}

impl Apply<events::OrderShipped> for Order {
    fn apply(&mut self, _: &events::OrderShipped) {
        self.shipped = true;
    }
}

fn main() {
    let mut order = Order::default();
    order.apply_event(&OrderEvent::from(events::OrderPlaced { total_cents: 42 }));
    order.apply_event(&events::OrderShipped.into());
    assert_eq!(order.total_cents, 42);
    assert!(order.shipped);

    assert_eq!(<Order as Aggregate>::TYPE, "Order");
    assert_eq!(OrderEvent::EVENT_TYPES, ["OrderPlaced", "OrderShipped"]);
    assert_eq!(
        <events::OrderPlaced as EventType>::EVENT_TYPE,
        "OrderPlaced"
    );

    let event = OrderEvent::OrderShipped(events::OrderShipped);
    assert_eq!(event.event_type(), "OrderShipped");
    let payload = event.to_payload().unwrap();
    assert_eq!(
        OrderEvent::from_payload("OrderShipped", &payload).unwrap(),
        event
    );
}
