use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Account, AccountEvent, Open, Opened};

#[command_handler(aggregate_id = cmd.id)]
fn open(account: &Account, cmd: Open) -> Vec<AccountEvent> {
    let _ = account;
    vec![Opened { id: cmd.id }.into()]
}

fn main() {}
