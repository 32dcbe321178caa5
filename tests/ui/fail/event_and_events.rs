use eventsource_runtime::{Aggregate, aggregate::Apply};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced;

#[derive(Default, Aggregate)]
#[aggregate(type = "Order", event = OrderPlaced, events(OrderPlaced))]
pub struct Order {
    pub placed: bool,
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {}
}

fn main() {}
