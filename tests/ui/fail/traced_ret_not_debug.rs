use eventsource_runtime::traced;

pub struct Receipt;

#[traced(ret)]
fn pay() -> Receipt {
    Receipt
}

fn main() {
    let _ = pay();
}
