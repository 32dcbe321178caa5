use eventsource_runtime::traced;

pub trait Notifier {
    #[traced]
    fn notify(&self, recipient: &str) -> bool;
}

fn main() {}
