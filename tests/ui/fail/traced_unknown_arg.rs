use eventsource_runtime::traced;

#[traced(nmae = "orders.place")]
fn place_order(order_id: u64) -> u64 {
    order_id
}

fn main() {
    place_order(1);
}
