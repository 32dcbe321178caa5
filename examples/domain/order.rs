//! The order domain of the examples, tests and benches: an `Order` aggregate with three
//! commands (place, ship, cancel) and an `OrderReadModel` projection.
//!
//! Everything here is plain Rust; `#[derive(Aggregate)]` generates `OrderEvent` and the
//! event application, the `Apply` impls are the state transitions, and the `Handle` impls
//! are the decisions.
#![allow(dead_code)]

use std::collections::BTreeMap;

use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// ---- Events: facts, named in the past tense. -------------------------------------------

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub customer_id: String,
    pub items: Vec<LineItem>,
    pub shipping_address: String,
    pub total_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub reason: String,
}

// ---- The aggregate: state plus state transitions. ----------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    #[default]
    New,
    Placed,
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, Default, Aggregate, Serialize, Deserialize)]
#[aggregate(type = "Order", events(OrderPlaced, OrderShipped, OrderCancelled))]
pub struct Order {
    pub status: OrderStatus,
    pub customer_id: String,
    pub total_cents: u64,
    pub item_count: usize,
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, event: &OrderPlaced) {
        self.status = OrderStatus::Placed;
        self.customer_id.clone_from(&event.customer_id);
        self.total_cents = event.total_cents;
        self.item_count = event.items.len();
    }
}

impl Apply<OrderShipped> for Order {
    fn apply(&mut self, _: &OrderShipped) {
        self.status = OrderStatus::Shipped;
    }
}

impl Apply<OrderCancelled> for Order {
    fn apply(&mut self, _: &OrderCancelled) {
        self.status = OrderStatus::Cancelled;
    }
}

// ---- Commands and decisions. -----------------------------------------------------------
//
// The decisions are plain methods; `#[command_handler]` on each `Handle` impl marks it for
// telemetry and, from `aggregate_id`, writes the `Command` impl of the command type.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order was already placed")]
    AlreadyPlaced,
    #[error("an order needs at least one item")]
    NoItems,
    #[error("order was never placed")]
    NotPlaced,
    #[error("order was already shipped")]
    AlreadyShipped,
    #[error("order was cancelled")]
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub order_id: String,
    pub customer_id: String,
    pub items: Vec<LineItem>,
    pub shipping_address: String,
}

#[derive(Debug, Clone)]
pub struct ShipOrder {
    pub order_id: String,
    pub carrier: String,
}

#[derive(Debug, Clone)]
pub struct CancelOrder {
    pub order_id: String,
    pub reason: String,
}

impl Order {
    /// Decides on `PlaceOrder`.
    pub fn place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status != OrderStatus::New {
            return Err(OrderError::AlreadyPlaced);
        }
        if cmd.items.is_empty() {
            return Err(OrderError::NoItems);
        }
        let total_cents = cmd
            .items
            .iter()
            .map(|i| u64::from(i.quantity) * i.unit_price_cents)
            .sum();
        Ok(vec![
            OrderPlaced {
                customer_id: cmd.customer_id,
                items: cmd.items,
                shipping_address: cmd.shipping_address,
                total_cents,
            }
            .into(),
        ])
    }

    /// Decides on `ShipOrder`.
    pub fn ship(&self, cmd: ShipOrder) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Shipped => Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
            OrderStatus::Placed => Ok(vec![
                OrderShipped {
                    tracking_number: format!("{}-{}", cmd.carrier.to_uppercase(), cmd.order_id),
                    carrier: cmd.carrier,
                }
                .into(),
            ]),
        }
    }

    /// Decides on `CancelOrder`.
    pub fn cancel(&self, cmd: CancelOrder) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Shipped => Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
            OrderStatus::Placed => Ok(vec![OrderCancelled { reason: cmd.reason }.into()]),
        }
    }
}

#[command_handler(aggregate_id = cmd.order_id)]
impl Handle<PlaceOrder> for Order {
    type Error = OrderError;
    fn handle(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        self.place(cmd)
    }
}

#[command_handler(aggregate_id = cmd.order_id)]
impl Handle<ShipOrder> for Order {
    type Error = OrderError;
    fn handle(&self, cmd: ShipOrder) -> Result<Vec<OrderEvent>, OrderError> {
        self.ship(cmd)
    }
}

#[command_handler(aggregate_id = cmd.order_id)]
impl Handle<CancelOrder> for Order {
    type Error = OrderError;
    fn handle(&self, cmd: CancelOrder) -> Result<Vec<OrderEvent>, OrderError> {
        self.cancel(cmd)
    }
}

// ---- The read side. ----------------------------------------------------------------------

/// One row of the order list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub customer_id: String,
    pub status: OrderStatus,
    pub total_cents: u64,
    pub last_position: u64,
}

/// The order list, kept up to date from the events.
#[derive(Debug, Default)]
pub struct OrderReadModel {
    pub orders: BTreeMap<String, OrderView>,
    /// Whether this instance's projection spans are on (projections are off by default).
    pub trace: bool,
}

// `#[projection]` writes the `Projection` impl: each `&mut self` method handles the events of
// its parameter's type, and only those types are delivered. `enable_tracing` reads the
// instance's own switch.
#[projection(enable_tracing = self.trace)]
impl OrderReadModel {
    fn on_placed(&mut self, placed: &OrderPlaced, envelope: &EventEnvelope) {
        self.orders.insert(
            envelope.aggregate_id().to_owned(),
            OrderView {
                customer_id: placed.customer_id.clone(),
                status: OrderStatus::Placed,
                total_cents: placed.total_cents,
                last_position: envelope.position,
            },
        );
    }

    fn on_shipped(&mut self, _: &OrderShipped, envelope: &EventEnvelope) {
        self.set_status(envelope, OrderStatus::Shipped);
    }

    fn on_cancelled(&mut self, _: &OrderCancelled, envelope: &EventEnvelope) {
        self.set_status(envelope, OrderStatus::Cancelled);
    }
}

// Helpers taking `&mut self` live outside the `#[projection]` block.
impl OrderReadModel {
    fn set_status(&mut self, envelope: &EventEnvelope, status: OrderStatus) {
        if let Some(view) = self.orders.get_mut(envelope.aggregate_id()) {
            view.status = status;
            view.last_position = envelope.position;
        }
    }
}

// ---- Sample data. ------------------------------------------------------------------------

/// A two-line order for `customer_id`.
pub fn sample_order(order_id: &str, customer_id: &str) -> PlaceOrder {
    PlaceOrder {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
        items: vec![
            LineItem {
                sku: "BOOK-42".into(),
                quantity: 2,
                unit_price_cents: 1_250,
            },
            LineItem {
                sku: "MUG-7".into(),
                quantity: 1,
                unit_price_cents: 900,
            },
        ],
        shipping_address: "1 Infinite Loop".into(),
    }
}
