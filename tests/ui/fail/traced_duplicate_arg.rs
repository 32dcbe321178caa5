use eventsource_runtime::traced;

#[traced(kind = client, ret, kind = server)]
fn fetch(id: u64) -> u64 {
    id
}

fn main() {
    fetch(1);
}
