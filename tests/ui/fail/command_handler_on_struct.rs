use eventsource_runtime::prelude::*;

#[command_handler]
pub struct NotAHandler;

fn main() {}
