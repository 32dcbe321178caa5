use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

fn account_upcasters() -> u32 {
    1
}

#[derive(Default, Aggregate)]
#[aggregate(events(Opened), upcasters = account_upcasters)]
pub struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

fn main() {}
