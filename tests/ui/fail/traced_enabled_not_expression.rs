use eventsource_runtime::traced;

#[traced(enabled = struct)]
fn place() {}

fn main() {
    place();
}
