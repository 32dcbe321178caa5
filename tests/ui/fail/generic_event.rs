use eventsource_runtime::{Aggregate, aggregate::Apply};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wrapper<T>(pub T);

#[derive(Default, Aggregate)]
#[aggregate(type = "Order", events(Wrapper<u8>))]
pub struct Order {
    pub placed: bool,
}

impl Apply<Wrapper<u8>> for Order {
    fn apply(&mut self, _: &Wrapper<u8>) {}
}

fn main() {}
