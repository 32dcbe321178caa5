use eventsource_runtime::Aggregate;

#[derive(Aggregate)]
#[aggregate(events(OrderPlaced))]
pub union Order {
    total_cents: u64,
}

fn main() {}
