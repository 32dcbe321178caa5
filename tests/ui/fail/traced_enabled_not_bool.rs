use eventsource_runtime::traced;

pub struct OrderService {
    tracing: u8,
}

impl OrderService {
    #[traced(enabled = self.tracing)]
    pub fn place(&self) -> u8 {
        self.tracing
    }
}

fn main() {
    OrderService { tracing: 1 }.place();
}
