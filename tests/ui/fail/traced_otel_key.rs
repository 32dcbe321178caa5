use eventsource_runtime::traced;

#[traced(attributes(otel.kind = "client"))]
fn fetch() {}

fn main() {
    fetch();
}
