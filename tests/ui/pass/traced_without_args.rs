//! The plainest use, through the prelude.

use eventsource_runtime::prelude::*;

pub struct Inbox {
    pub tracing: bool,
}

impl Inbox {
    #[traced(enabled = self.tracing)]
    pub fn receive(&self, message: &str) -> usize {
        eventsource_runtime::telemetry::set_attribute("message.length", message.len() as i64);
        message.len()
    }
}

#[traced]
fn main() {
    let inbox = Inbox { tracing: false };
    assert_eq!(inbox.receive("hi"), 2);
}
