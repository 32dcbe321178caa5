use eventsource_runtime::traced;

pub struct Total(pub u64);

#[traced(fields(total = %total))]
fn charge(total: Total) -> u64 {
    total.0
}

fn main() {
    charge(Total(1));
}
