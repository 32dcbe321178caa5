use eventsource_runtime::traced;

#[traced(err)]
fn count(items: &[u32]) -> usize {
    items.len()
}

fn main() {
    count(&[]);
}
