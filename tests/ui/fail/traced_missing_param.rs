use eventsource_runtime::traced;

#[traced(fields(customer.id = customer, items.count = items.len()))]
fn place_order(customer_id: &str, items: &[u32]) -> usize {
    customer_id.len() + items.len()
}

fn main() {
    place_order("c-1", &[]);
}
