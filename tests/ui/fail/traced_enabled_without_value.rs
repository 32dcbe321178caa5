use eventsource_runtime::traced;

pub struct OrderService {
    tracing: bool,
}

impl OrderService {
    #[traced(enabled, ret)]
    pub fn place(&self) -> bool {
        self.tracing
    }
}

fn main() {
    OrderService { tracing: true }.place();
}
