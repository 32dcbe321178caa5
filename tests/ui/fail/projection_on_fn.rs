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
fn on_placed(list: &mut OrderList, _: &OrderPlaced) {
    list.count += 1;
}

fn main() {}
