//! The code the macros expand to fires no lint in a user's crate.
//!
//! Every rustc and clippy lint group below is denied for this whole crate, so
//! `cargo clippy --all-targets --all-features -- -D warnings` fails if the expansion (the
//! generated enum, its impls, the `Aggregate` impl) trips any of them. The test itself checks
//! that the derived aggregates work.
#![deny(
    warnings,
    missing_docs,
    unused,
    rust_2018_idioms,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery
)]

/// A small domain, written as a user's crate would write it.
pub mod domain;

use domain::movements::{Deposited, Withdrawn};
use domain::{
    Account, Counter, Incremented, Light, LightEvent, Movement, Order, OrderCancelled, OrderEvent,
    OrderPlaced, OrderShipped,
};
use eventsource_runtime::aggregate::{Aggregate, AggregateRoot};
use eventsource_runtime::event::DomainEvent;

#[test]
fn derived_aggregates_record_events() {
    let mut order = AggregateRoot::<Order>::new("o-1");
    order.record(OrderPlaced { total_cents: 1250 });
    order.record(OrderShipped);
    assert_eq!(order.state().total_cents(), 1250);
    assert!(order.state().is_shipped());
    assert_eq!(order.version(), 2);
    assert_eq!(
        order.uncommitted()[1],
        OrderEvent::OrderShipped(OrderShipped)
    );
    assert_eq!(order.stream().aggregate_type(), "Order");
    assert!(!order.state().is_cancelled());
    let mut cancelled = AggregateRoot::<Order>::new("o-2");
    cancelled.record(OrderCancelled {
        reason: "changed my mind".to_owned(),
    });
    assert!(cancelled.state().is_cancelled());

    let mut account = AggregateRoot::<Account>::new("a-1");
    account.record(Deposited { cents: 100 });
    account.record(Movement::from(Withdrawn { cents: 30 }));
    assert_eq!(account.state().balance_cents(), 70);
    assert_eq!(
        account
            .uncommitted()
            .iter()
            .map(DomainEvent::event_type)
            .collect::<Vec<_>>(),
        ["Deposited", "Withdrawn"]
    );

    let mut light = AggregateRoot::<Light>::new("hall");
    light.record(LightEvent::SwitchedOn);
    assert!(light.state().is_on());
    light.record(LightEvent::SwitchedOff);
    assert!(!light.state().is_on());
    assert_eq!(<Light as Aggregate>::TYPE, "Light");

    let mut counter = AggregateRoot::<Counter<Deposited>>::new("c-1");
    counter.record(Incremented);
    counter.record(Incremented);
    assert_eq!(counter.into_state().count(), 2);
}

/// Command handlers written as a user's crate would write them, with ids of every kind.
pub mod commands;

#[tokio::test]
async fn command_handlers_run() {
    use commands::{AccountNumber, Deposit, Ship};
    use eventsource_runtime::command::{Command, CommandService};
    use eventsource_runtime::store::InMemoryEventStore;

    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let ship = || Ship {
        order_id: "o-1".to_owned(),
    };
    let shipped = orders.execute(ship()).await.expect("first shipment");
    assert_eq!(shipped.events[0].aggregate_id(), "o-1");
    drop(shipped);
    assert!(orders.execute(ship()).await.is_err());

    let accounts = CommandService::<Account>::new(InMemoryEventStore::new());
    let deposit = Deposit {
        account: AccountNumber(7),
        cents: 250,
    };
    assert_eq!(deposit.aggregate_id(), "acc-7");
    assert_eq!(<Deposit as Command>::TYPE, "MakeDeposit");
    let deposited = accounts.execute(deposit).await.expect("a deposit");
    assert_eq!(deposited.events[0].aggregate_id(), "acc-7");
    assert_eq!(deposited.aggregate.state().balance_cents(), 250);
}

/// A read model kept by `#[projection]`, written as a user's crate would write it.
pub mod read_side;

#[tokio::test]
async fn projections_are_fed() {
    use eventsource_runtime::event::{NewEvent, StreamId};
    use eventsource_runtime::projection::{Projection, ProjectionRegistry};
    use eventsource_runtime::store::{EventStore, ExpectedVersion, InMemoryEventStore};
    use read_side::OrderTotals;

    assert!(OrderTotals::traced().tracing_enabled());
    let events = [
        OrderEvent::from(OrderPlaced { total_cents: 1250 }),
        OrderEvent::from(OrderShipped),
    ]
    .iter()
    .map(|e| NewEvent::from_event(e).unwrap())
    .collect();
    let saved = InMemoryEventStore::new()
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .unwrap();
    let registry = ProjectionRegistry::new();
    let totals = registry.register(OrderTotals::default());
    assert!(registry.deliver(&saved.events).await.is_empty());
    assert_eq!(totals.lock().await.total_cents(), 1250);
    assert_eq!(totals.lock().await.shipped(), 1);
}

/// Functions and methods under `#[traced]`, written as a user's crate would write them.
pub mod traced_uses;

#[tokio::test]
async fn traced_functions_work() {
    use traced_uses::{Charge, Payments, Receipts, double, largest, record, settle};

    let payments = Payments { tracing: true };
    assert_eq!(payments.pay("c-1", 250).await, Ok(250));
    assert!(payments.pay("c-1", 0).await.is_err());
    assert!(payments.tracing());
    assert_eq!(payments.charge(7), Ok(7));
    let lines = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(payments.receipt(&lines).count(), 2);
    assert_eq!(largest(&[1, 5, 3]), Some(5));
    assert_eq!(double(21), 42);
    assert_eq!(payments.count(2).await, Ok(2));
    record(1);
    settle().await;
}
