use eventsource_runtime::traced;

#[traced(attributes("customer.id" = "fixed"), fields(customer.id = customer_id))]
fn place(customer_id: &str) -> usize {
    customer_id.len()
}

fn main() {
    place("c-1");
}
