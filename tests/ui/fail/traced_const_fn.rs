use eventsource_runtime::traced;

#[traced]
const fn double(n: u64) -> u64 {
    n * 2
}

fn main() {
    double(1);
}
