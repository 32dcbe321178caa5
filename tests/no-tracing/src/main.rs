//! Every macro, expanded without telemetry.

use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(Opened))]
pub struct Account {
    open: bool,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {
        self.open = true;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("already open")]
pub struct AlreadyOpen;

pub struct Open {
    pub id: String,
    pub owner: String,
}

#[command_handler(aggregate_id = command.id, name = "open_account")]
fn open(account: &Account, command: Open) -> Result<Vec<AccountEvent>, AlreadyOpen> {
    if account.open {
        return Err(AlreadyOpen);
    }
    Ok(vec![Opened { owner: command.owner }.into()])
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
    let outcome = accounts
        .execute(Open {
            id: "a-1".into(),
            owner: "ada".into(),
        })
        .await
        .expect("the command runs without telemetry");
    assert_eq!(outcome.version(), 1);
    println!("ok");
}
