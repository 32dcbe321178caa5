use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct OrderPlaced;
impl EventType for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
}

#[derive(Default)]
pub struct OrderList {
    count: usize,
}

#[projection]
impl Projection for OrderList {
    fn on_placed(&mut self, _: &OrderPlaced) {
        self.count += 1;
    }
}

fn main() {
    let _ = ProjectionRegistry::new().register(OrderList::default());
}
