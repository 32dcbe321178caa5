use eventsource_runtime::event::upcast::Upcasters;
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    name: String,
}

fn account_upcasters() -> Upcasters {
    Upcasters::new()
        .step("Renamed", 1, |payload| {
            payload["name"] = payload["title"].take();
            Ok::<_, &str>(())
        })
        .step("Renamed", 2, |_| Ok::<_, &str>(()))
        .rename("Retitled", "Renamed")
}

#[derive(Default, Aggregate)]
#[aggregate(
    type = "Account",
    events(Opened, Renamed(version = 3)),
    upcasters = account_upcasters,
    snapshot_version = 2
)]
pub struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

impl Apply<Renamed> for Account {
    fn apply(&mut self, _: &Renamed) {}
}

fn main() {
    assert_eq!(<Opened as EventType>::SCHEMA_VERSION, 1);
    assert_eq!(<Renamed as EventType>::SCHEMA_VERSION, 3);
    assert_eq!(<Account as Aggregate>::SNAPSHOT_VERSION, 2);
    assert_eq!(AccountEvent::schema_version_of("Renamed"), Some(3));
    assert_eq!(AccountEvent::schema_version_of("Retitled"), None);
    AccountEvent::upcasters().check().unwrap();
}
