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
pub mod domain {
    use std::marker::PhantomData;

    use eventsource_runtime::Aggregate;
    use eventsource_runtime::aggregate::Apply;
    use eventsource_runtime::event::{DecodeError, DomainEvent, Payload};
    use serde::{Deserialize, Serialize};

    /// An order was placed.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderPlaced {
        /// The order's total, in cents.
        pub total_cents: u64,
    }

    /// An order left the warehouse.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderShipped;

    /// An order was cancelled before it shipped.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderCancelled {
        /// Why.
        pub reason: String,
    }

    /// An order: the default arguments (enum `OrderEvent`), whose variants share a prefix
    /// and are all `Eq`.
    #[derive(Debug, Default, Aggregate)]
    #[aggregate(type = "Order", events(OrderPlaced, OrderShipped, OrderCancelled))]
    pub struct Order {
        total_cents: u64,
        shipped: bool,
        cancelled: bool,
    }

    impl Order {
        /// The order's total, in cents.
        #[must_use]
        pub const fn total_cents(&self) -> u64 {
            self.total_cents
        }

        /// Whether the order was shipped.
        #[must_use]
        pub const fn is_shipped(&self) -> bool {
            self.shipped
        }

        /// Whether the order was cancelled.
        #[must_use]
        pub const fn is_cancelled(&self) -> bool {
            self.cancelled
        }
    }

    impl Apply<OrderPlaced> for Order {
        fn apply(&mut self, event: &OrderPlaced) {
            self.total_cents = event.total_cents;
        }
    }

    impl Apply<OrderShipped> for Order {
        fn apply(&mut self, _: &OrderShipped) {
            self.shipped = true;
        }
    }

    impl Apply<OrderCancelled> for Order {
        fn apply(&mut self, _: &OrderCancelled) {
            self.cancelled = true;
        }
    }

    /// The account's events, in a module of their own.
    pub mod movements {
        use serde::{Deserialize, Serialize};

        /// Money came in.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Deposited {
            /// The amount, in cents.
            pub cents: u64,
        }

        /// Money went out.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Withdrawn {
            /// The amount, in cents.
            pub cents: u64,
        }
    }

    /// An account: a named enum (`event_enum`) and events listed by path.
    #[derive(Debug, Default, Aggregate)]
    #[aggregate(
        type = "Account",
        event_enum = Movement,
        events(movements::Deposited, self::movements::Withdrawn)
    )]
    pub struct Account {
        balance_cents: u64,
    }

    impl Account {
        /// The balance, in cents.
        #[must_use]
        pub const fn balance_cents(&self) -> u64 {
            self.balance_cents
        }
    }

    impl Apply<movements::Deposited> for Account {
        fn apply(&mut self, event: &movements::Deposited) {
            self.balance_cents += event.cents;
        }
    }

    impl Apply<movements::Withdrawn> for Account {
        fn apply(&mut self, event: &movements::Withdrawn) {
            self.balance_cents -= event.cents;
        }
    }

    /// A light's events, written by hand.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum LightEvent {
        /// The light was switched on.
        SwitchedOn,
        /// The light was switched off.
        SwitchedOff,
    }

    impl DomainEvent for LightEvent {
        const EVENT_TYPES: &'static [&'static str] = &["SwitchedOn", "SwitchedOff"];

        fn event_type(&self) -> &'static str {
            match self {
                Self::SwitchedOn => "SwitchedOn",
                Self::SwitchedOff => "SwitchedOff",
            }
        }

        fn to_payload(&self) -> Result<Payload, serde_json::Error> {
            Ok(Payload::from(serde_json::Value::Null))
        }

        fn from_payload(event_type: &str, _: &Payload) -> Result<Self, DecodeError> {
            match event_type {
                "SwitchedOn" => Ok(Self::SwitchedOn),
                "SwitchedOff" => Ok(Self::SwitchedOff),
                _ => Err(DecodeError::UnknownEventType {
                    event_type: event_type.to_owned(),
                    known: Self::EVENT_TYPES,
                }),
            }
        }
    }

    /// A light: the hand-written event enum (`event = ..`), type name defaulted.
    #[derive(Debug, Default, Aggregate)]
    #[aggregate(event = LightEvent)]
    pub struct Light {
        on: bool,
    }

    impl Light {
        /// Whether the light is on.
        #[must_use]
        pub const fn is_on(&self) -> bool {
            self.on
        }
    }

    impl Apply<LightEvent> for Light {
        fn apply(&mut self, event: &LightEvent) {
            self.on = matches!(event, LightEvent::SwitchedOn);
        }
    }

    /// A counter was incremented.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Incremented;

    /// A counter of things of kind `T`: a generic aggregate.
    #[derive(Debug, Aggregate)]
    #[aggregate(type = "Counter", events(Incremented))]
    pub struct Counter<T: Send + Sync + 'static> {
        count: u32,
        kind: PhantomData<fn() -> T>,
    }

    impl<T: Send + Sync + 'static> Default for Counter<T> {
        fn default() -> Self {
            Self {
                count: 0,
                kind: PhantomData,
            }
        }
    }

    impl<T: Send + Sync + 'static> Counter<T> {
        /// How many times the counter was incremented.
        #[must_use]
        pub const fn count(&self) -> u32 {
            self.count
        }
    }

    impl<T: Send + Sync + 'static> Apply<Incremented> for Counter<T> {
        fn apply(&mut self, _: &Incremented) {
            self.count += 1;
        }
    }
}

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
pub mod commands {
    use std::fmt;

    use eventsource_runtime::command::Handle;
    use eventsource_runtime::command_handler;

    use crate::domain::movements::Deposited;
    use crate::domain::{Account, Movement, Order, OrderEvent, OrderShipped};

    /// The order was shipped already.
    #[derive(Debug, thiserror::Error)]
    #[error("shipped already")]
    pub struct ShippedAlready;

    /// Ships an order: the id is a `String` field.
    pub struct Ship {
        /// The order.
        pub order_id: String,
    }

    #[command_handler(aggregate_id = cmd.order_id)]
    impl Handle<Ship> for Order {
        type Error = ShippedAlready;
        fn handle(&self, cmd: Ship) -> Result<Vec<OrderEvent>, ShippedAlready> {
            drop(cmd);
            if self.is_shipped() {
                return Err(ShippedAlready);
            }
            Ok(vec![OrderShipped.into()])
        }
    }

    /// An account number, shown with its branch.
    #[derive(Debug, Clone, Copy)]
    pub struct AccountNumber(pub u32);

    impl fmt::Display for AccountNumber {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "acc-{}", self.0)
        }
    }

    /// Deposits into an account: the id is a `Display` type.
    #[derive(Debug, Clone, Copy)]
    pub struct Deposit {
        /// The account.
        pub account: AccountNumber,
        /// The amount, in cents.
        pub cents: u64,
    }

    /// A deposit of nothing.
    #[derive(Debug, thiserror::Error)]
    #[error("nothing to deposit")]
    pub struct NothingToDeposit;

    /// A decision function whose command's id is a `Display` type.
    ///
    /// # Errors
    /// [`NothingToDeposit`] for zero cents.
    #[command_handler(aggregate_id = deposit.account, command_type = "MakeDeposit")]
    pub fn deposit(_: &Account, deposit: Deposit) -> Result<Vec<Movement>, NothingToDeposit> {
        let cents = deposit.cents;
        if cents == 0 {
            return Err(NothingToDeposit);
        }
        Ok(vec![Deposited { cents }.into()])
    }
}

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
pub mod read_side {
    use std::error::Error;
    use std::fmt;

    use eventsource_runtime::event::EventEnvelope;

    use crate::domain::{OrderCancelled, OrderPlaced, OrderShipped};

    /// A shipment arrived for an order that was never placed.
    #[derive(Debug)]
    pub struct UnknownOrder(pub String);

    impl fmt::Display for UnknownOrder {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "order {} was never placed", self.0)
        }
    }

    impl Error for UnknownOrder {}

    /// Order totals, traced per instance.
    #[derive(Debug, Default)]
    pub struct OrderTotals {
        total_cents: u64,
        placed: u32,
        shipped: u32,
        trace: bool,
    }

    #[eventsource_runtime::projection(name = "projection.totals", enable_tracing = self.trace)]
    impl OrderTotals {
        /// A read model whose spans are on.
        #[must_use]
        pub fn traced() -> Self {
            Self {
                trace: true,
                ..Self::default()
            }
        }

        const fn on_placed(&mut self, event: &OrderPlaced) {
            self.total_cents += event.total_cents;
            self.placed += 1;
        }

        async fn on_shipped(
            &mut self,
            _: &OrderShipped,
            envelope: &EventEnvelope,
        ) -> Result<(), UnknownOrder> {
            tokio::task::yield_now().await;
            if self.placed == 0 {
                return Err(UnknownOrder(envelope.aggregate_id().to_owned()));
            }
            self.shipped += 1;
            Ok(())
        }

        fn on_cancelled(
            &mut self,
            event: &OrderCancelled,
        ) -> Result<(), Box<dyn Error + Send + Sync>> {
            if event.reason.is_empty() {
                return Err("a cancellation needs a reason".into());
            }
            self.placed -= 1;
            Ok(())
        }

        /// The total of the placed orders, in cents.
        #[must_use]
        pub const fn total_cents(&self) -> u64 {
            self.total_cents
        }

        /// How many orders shipped.
        #[must_use]
        pub const fn shipped(&self) -> u32 {
            self.shipped
        }
    }
}

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
pub mod traced_uses {
    use std::fmt;

    use eventsource_runtime::traced;

    /// A payment was refused.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Refused(pub String);

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "refused: {}", self.0)
        }
    }

    impl std::error::Error for Refused {}

    /// What a payment returns.
    pub type Paid = Result<u64, Refused>;

    /// Takes payments, traced per instance.
    #[derive(Debug)]
    pub struct Payments {
        /// This instance's switch.
        pub tracing: bool,
    }

    /// Something that can be charged.
    pub trait Charge {
        /// Charges `cents`.
        ///
        /// # Errors
        /// When the charge is refused.
        fn charge(&self, cents: u64) -> Result<u64, Refused>;
    }

    impl Payments {
        /// Pays `cents` for `customer_id`.
        ///
        /// # Errors
        /// When `cents` is zero.
        #[traced(
            name = "payments.pay",
            kind = client,
            attributes("channel" = "card", retries = 3),
            fields(customer.id = customer_id, amount = cents, label = %customer_id, dbg = ?cents),
            enabled = self.tracing,
            err,
        )]
        pub async fn pay(&self, customer_id: &str, cents: u64) -> Paid {
            tokio::task::yield_now().await;
            if cents == 0 {
                return Err(Refused(customer_id.to_owned()));
            }
            eventsource_runtime::telemetry::set_attribute("payment.express", true);
            Ok(cents)
        }

        /// The instance's switch.
        #[must_use]
        #[traced(ret)]
        pub fn tracing(&self) -> bool {
            self.tracing
        }

        /// The lines of a receipt.
        #[traced(fields(count = lines.len()))]
        pub fn receipt<'a>(&self, lines: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
            lines.iter().map(String::as_str)
        }
    }

    impl Charge for Payments {
        #[traced(fields(cents))]
        fn charge(&self, cents: u64) -> Result<u64, Refused> {
            let parsed: u64 = cents
                .to_string()
                .parse()
                .map_err(|_| Refused("parse".to_owned()))?;
            Ok(parsed)
        }
    }

    /// Receipts, through `#[async_trait]`.
    #[eventsource_runtime::async_trait]
    pub trait Receipts {
        /// How many receipts there are.
        ///
        /// # Errors
        /// When they cannot be counted.
        async fn count(&self, since: u64) -> Result<usize, Refused>;
    }

    #[eventsource_runtime::async_trait]
    impl Receipts for Payments {
        #[traced(fields(since), enabled = self.tracing)]
        async fn count(&self, since: u64) -> Result<usize, Refused> {
            tokio::task::yield_now().await;
            usize::try_from(since).map_err(|_| Refused("too many".to_owned()))
        }
    }

    /// The largest item, if any.
    #[must_use]
    #[traced]
    pub fn largest<T: PartialOrd + Copy>(items: &[T]) -> Option<T> {
        items
            .iter()
            .copied()
            .reduce(|a, b| if b > a { b } else { a })
    }

    /// Doubles `n`, in a span.
    #[must_use]
    #[traced]
    pub fn double(n: i64) -> i64 {
        n * 2
    }

    /// Returns nothing, in a span.
    #[traced(fields(n))]
    pub fn record(n: u8) {
        eventsource_runtime::telemetry::set_attribute("recorded", i64::from(n));
    }

    /// Returns nothing, asynchronously.
    #[traced]
    pub async fn settle() {
        tokio::task::yield_now().await;
    }
}

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
