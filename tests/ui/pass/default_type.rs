//! `type` omitted: the stored aggregate type name is the struct's name.

use eventsource_runtime::{Aggregate, aggregate::{Aggregate, Apply}};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced;

#[derive(Default, Aggregate)]
#[aggregate(events(OrderPlaced))]
pub struct Order {
    placed: bool,
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {
        self.placed = true;
    }
}

fn main() {
    assert_eq!(<Order as Aggregate>::TYPE, "Order");
    let mut order = Order::default();
    order.apply_event(&OrderEvent::OrderPlaced(OrderPlaced));
    assert!(order.placed);
}
