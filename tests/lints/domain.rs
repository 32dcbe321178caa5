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
