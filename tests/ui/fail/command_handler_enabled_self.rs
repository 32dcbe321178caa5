use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

#[derive(Default, Aggregate)]
#[aggregate(type = "Account", events(Opened))]
pub struct Account {
    tracing: bool,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

pub struct Open {
    pub id: String,
}

#[command_handler(enabled = self.tracing, aggregate_id = cmd.id)]
impl Handle<Open> for Account {
    type Error = std::convert::Infallible;
    fn handle(&self, cmd: Open) -> Result<Vec<AccountEvent>, Self::Error> {
        drop(cmd);
        Ok(vec![Opened.into()])
    }
}

async fn open(accounts: &CommandService<Account>) {
    let _ = accounts.execute(Open { id: "a-1".into() }).await;
}

fn main() {
    drop(open);
}
