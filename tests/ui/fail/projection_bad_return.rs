use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::orders::OrderPlaced;

#[derive(Default)]
pub struct OrderList {
    count: usize,
}

#[projection]
impl OrderList {
    fn on_placed(&mut self, _: &OrderPlaced) -> usize {
        self.count += 1;
        self.count
    }
}

fn main() {}
