use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Account, AccountEvent, Open, Opened, Refused};

#[command_handler(aggregate_id = cmd.id)]
async fn open(account: &Account, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
    let _ = account;
    Ok(vec![Opened { id: cmd.id }.into()])
}

fn main() {}
