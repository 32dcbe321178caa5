use eventsource_runtime::traced;

#[traced(name = format!("fetch.{}", 1))]
fn fetch(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = fetch(1);
}
