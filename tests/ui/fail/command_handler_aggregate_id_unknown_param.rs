use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

#[derive(Default, Aggregate)]
#[aggregate(type = "Account", events(Opened))]
pub struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct Refused;

pub struct Open {
    pub id: String,
}

#[command_handler(aggregate_id = command.id)]
impl Handle<Open> for Account {
    type Error = Refused;
    fn handle(&self, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
        drop(cmd);
        Ok(vec![Opened.into()])
    }
}

// The rest of the program still sees `Open` as a command: one error, no cascade.
async fn open(accounts: &CommandService<Account>) {
    let _ = accounts.execute(Open { id: "a-1".into() }).await;
}

fn main() {
    drop(open);
}
