use eventsource_runtime::{Aggregate, aggregate::Apply};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderShipped;

#[derive(Default, Aggregate)]
#[aggregate(type = "Order", events(OrderPlaced, OrderShipped))]
pub struct Order;

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {}
}

impl Apply<OrderShipped> for Order {
    fn apply(&mut self, _: &OrderShipped) {}
}

fn main() {}
