use eventsource_runtime::traced;

#[traced(err = true)]
fn fetch(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = fetch(1);
}
