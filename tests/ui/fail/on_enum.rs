use eventsource_runtime::Aggregate;

#[derive(Aggregate)]
#[aggregate(events(OrderPlaced))]
pub enum Order {
    Placed,
}

fn main() {}
