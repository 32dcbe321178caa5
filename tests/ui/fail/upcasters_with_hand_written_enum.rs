use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

fn account_upcasters() -> eventsource_runtime::event::upcast::Upcasters {
    eventsource_runtime::event::upcast::Upcasters::new()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened(Opened),
}

#[derive(Default, Aggregate)]
#[aggregate(event = AccountEvent, upcasters = account_upcasters)]
pub struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

fn main() {}
