use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::orders::OrderPlaced;

#[derive(Default)]
pub struct OrderList {
    count: usize,
}

#[projection(name = projection.orders)]
impl OrderList {
    fn on_placed(&mut self, _: &OrderPlaced) {
        self.count += 1;
    }
}

fn main() {}
