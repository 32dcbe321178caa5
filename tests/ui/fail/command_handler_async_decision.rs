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

#[command_handler(aggregate_id = cmd.id)]
async fn open(account: &Account, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
    let _ = (account, cmd);
    Ok(vec![Opened.into()])
}

fn main() {}
