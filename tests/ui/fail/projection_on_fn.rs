use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::orders::OrderPlaced;

#[derive(Default)]
pub struct OrderList {
    count: usize,
}

#[projection]
fn on_placed(list: &mut OrderList, _: &OrderPlaced) {
    list.count += 1;
}

fn main() {}
