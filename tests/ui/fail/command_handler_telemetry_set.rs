use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Account, AccountEvent, Opened, Refused};

pub struct Open {
    pub id: String,
}

#[command_handler(aggregate_id = cmd.id)]
impl Handle<Open> for Account {
    type Error = Refused;
    const TELEMETRY: eventsource_runtime::command::HandlerTelemetry =
        eventsource_runtime::command::HandlerTelemetry::DEFAULT;
    fn handle(&self, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
        Ok(vec![Opened { id: cmd.id }.into()])
    }
}

fn main() {}
