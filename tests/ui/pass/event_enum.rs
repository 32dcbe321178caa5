//! `event_enum = ..` names the generated enum.

use eventsource_runtime::{Aggregate, aggregate::{Aggregate, AggregateRoot, Apply}, event::DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub cents: u64,
}

#[derive(Default, Aggregate)]
#[aggregate(type = "Account", event_enum = Movement, events(Deposited, Withdrawn))]
pub struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.cents;
    }
}

impl Apply<Withdrawn> for Account {
    fn apply(&mut self, event: &Withdrawn) {
        self.balance -= event.cents;
    }
}

fn takes_movement(event: &Movement) -> &'static str {
    event.event_type()
}

fn main() {
    let mut account = AggregateRoot::<Account>::new("a-1");
    account.record(Deposited { cents: 100 });
    account.record(Withdrawn { cents: 30 });
    assert_eq!(account.state().balance, 70);
    assert_eq!(account.version(), 2);
    assert_eq!(takes_movement(&account.uncommitted()[1]), "Withdrawn");
    let _: &<Account as Aggregate>::Event = &Movement::Deposited(Deposited { cents: 1 });
}
