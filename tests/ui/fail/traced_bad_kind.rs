use eventsource_runtime::traced;

#[traced(kind = clinet)]
fn fetch(id: u64) -> u64 {
    id
}

fn main() {
    fetch(1);
}
