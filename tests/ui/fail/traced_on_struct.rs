use eventsource_runtime::traced;

#[traced]
pub struct OrderService {
    pub tracing: bool,
}

fn main() {
    let _ = OrderService { tracing: true }.tracing;
}
