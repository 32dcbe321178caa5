use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{AccountEvent, Open, Opened, Refused};

#[command_handler(aggregate_id = cmd.id)]
fn open(cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
    Ok(vec![Opened { id: cmd.id }.into()])
}

fn main() {}
