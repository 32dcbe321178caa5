use eventsource_runtime::prelude::*;

#[derive(Default)]
pub struct OrderList {
    count: usize,
}

#[projection]
impl OrderList {
    fn count(&self) -> usize {
        self.count
    }
}

fn main() {}
