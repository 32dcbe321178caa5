use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::orders::OrderPlaced;

#[projection]
#[derive(Default)]
pub struct OrderList {
    count: usize,
}

impl OrderList {
    fn on_placed(&mut self, _: &OrderPlaced) {
        self.count += 1;
    }
}

fn main() {
    let _ = ProjectionRegistry::new().register(OrderList::default());
}
