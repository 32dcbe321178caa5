use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Open, Refused};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

#[derive(Default, Aggregate)]
#[aggregate(type = "Account", events(Opened))]
pub struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

#[command_handler]
impl Account {
    pub fn open(&self, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
        drop(cmd);
        Ok(vec![Opened.into()])
    }
}

fn main() {}
