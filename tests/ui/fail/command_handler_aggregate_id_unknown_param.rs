use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Account, AccountEvent, Opened, Refused};

pub struct Open {
    pub id: String,
}

#[command_handler(aggregate_id = command.id)]
impl Handle<Open> for Account {
    type Error = Refused;
    fn handle(&self, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
        Ok(vec![Opened { id: cmd.id }.into()])
    }
}

// The rest of the program still sees `Open` as a command: one error, no cascade.
async fn open(accounts: &CommandService<Account>) {
    let _ = accounts.execute(Open { id: "a-1".into() }).await;
}

fn main() {
    drop(open);
}
