use eventsource_runtime::traced;

pub struct OrderService;

#[traced]
impl OrderService {
    pub fn place(&self) {}
}

fn main() {
    OrderService.place();
}
