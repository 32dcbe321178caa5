use eventsource_runtime::traced;

pub struct OrderId(pub u64);

#[traced(fields(order = order_id))]
fn place(order_id: OrderId) -> u64 {
    order_id.0
}

fn main() {
    place(OrderId(1));
}
