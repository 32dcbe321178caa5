//! `#[projection]`: handler dispatch, delivery of handled types only, failures, and the
//! projection spans (off by default, switched on per projection or per instance, named,
//! linked to the span that appended the event).

mod dispatch;
mod in_process;
mod spans;

use crate::domain;

use std::collections::BTreeMap;

use domain::{
    CancelOrder, Order, OrderCancelled, OrderEvent, OrderPlaced, OrderShipped, ShipOrder,
    sample_order,
};
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::DeliveryFailure;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use serde::{Deserialize, Serialize};

// ---- Projections under test. --------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("refused to cancel {0}")]
struct Refused(String);

/// Records which handler saw what; every handler shape once.
#[derive(Debug, Default)]
struct Journal {
    calls: Vec<String>,
}

#[projection]
impl Journal {
    /// Sync, no envelope, returns `()`.
    fn placed(&mut self, event: &OrderPlaced) {
        self.calls.push(format!("placed by {}", event.customer_id));
    }

    /// Async, with the envelope, returns `()`.
    async fn shipped(&mut self, event: &OrderShipped, envelope: &EventEnvelope) {
        tokio::task::yield_now().await;
        self.calls.push(format!(
            "shipped {} v{} by {}",
            envelope.aggregate_id(),
            envelope.version,
            event.carrier
        ));
    }

    /// Sync, with the envelope (by its full path), returns a `Result`.
    fn cancelled(
        &mut self,
        event: &OrderCancelled,
        envelope: &eventsource_runtime::event::EventEnvelope,
    ) -> Result<(), Refused> {
        if event.reason == "refuse" {
            return Err(Refused(envelope.aggregate_id().to_owned()));
        }
        self.calls.push(format!(
            "cancelled {}: {}",
            envelope.aggregate_id(),
            event.reason
        ));
        Ok(())
    }

    /// Not a handler (`&self`): left alone.
    fn count(&self) -> usize {
        self.calls.len()
    }

    /// Not a handler (no receiver): left alone.
    fn with_call(call: &str) -> Self {
        Self {
            calls: vec![call.to_owned()],
        }
    }
}

/// Another aggregate's event, which no order projection handles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(Deposited))]
struct Account;

impl Apply<Deposited> for Account {
    fn apply(&mut self, _: &Deposited) {}
}

/// An async handler returning a boxed error.
#[derive(Debug, Default)]
struct Totals {
    cents: BTreeMap<String, u64>,
}

#[projection]
impl Totals {
    async fn placed(
        &mut self,
        event: &OrderPlaced,
        envelope: &EventEnvelope,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if event.total_cents == 0 {
            return Err("an order of nothing".into());
        }
        self.cents
            .insert(envelope.aggregate_id().to_owned(), event.total_cents);
        Ok(())
    }
}

/// Traced, handling only placements and cancellations.
#[derive(Debug, Default)]
struct TracedOrders {
    placed: usize,
}

#[projection(enable_tracing = true)]
impl TracedOrders {
    fn placed(&mut self, _: &OrderPlaced) {
        self.placed += 1;
    }

    fn cancelled(&mut self, event: &OrderCancelled) -> Result<(), Refused> {
        if event.reason == "refuse" {
            return Err(Refused("o-1".into()));
        }
        Ok(())
    }
}

/// Traced under chosen names.
#[derive(Debug, Default)]
struct Renamed;

#[projection(
    name = "projection.update",
    projection_name = "OrderUpdates",
    enable_tracing = true
)]
impl Renamed {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// Traced under a chosen projection name, default span name.
#[derive(Debug, Default)]
struct Named;

/// The switch of `Named`: any `bool` expression.
const TRACE_NAMED: bool = true;

#[projection(projection_name = "OrderList", enable_tracing = TRACE_NAMED)]
impl Named {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// Traced per instance.
#[derive(Debug, Default)]
struct Switchable {
    trace: bool,
}

#[projection(enable_tracing = self.trace)]
impl Switchable {
    fn placed(&mut self, _: &OrderPlaced) {}
}

/// A generic projection.
#[derive(Debug)]
struct Tagged<T> {
    tag: T,
    seen: Vec<String>,
}

#[projection]
impl<T> Tagged<T>
where
    T: std::fmt::Display + Send + 'static,
{
    fn placed(&mut self, event: &OrderPlaced) {
        self.seen
            .push(format!("{}:{}", self.tag, event.customer_id));
    }
}

// ---- Helpers. -----------------------------------------------------------------------------

fn placed(customer: &str, total_cents: u64) -> OrderEvent {
    OrderPlaced {
        customer_id: customer.into(),
        items: vec![],
        shipping_address: String::new(),
        total_cents,
    }
    .into()
}

fn shipped() -> OrderEvent {
    OrderShipped {
        carrier: "dhl".into(),
        tracking_number: "DHL-1".into(),
    }
    .into()
}

fn cancelled(reason: &str) -> OrderEvent {
    OrderCancelled {
        reason: reason.into(),
    }
    .into()
}

/// Appends `events` to order `id`'s stream (no spans) and returns the stored envelopes.
async fn stored(id: &str, events: &[OrderEvent]) -> Vec<EventEnvelope> {
    let store = InMemoryEventStore::new().enable_tracing(false);
    let new = events
        .iter()
        .map(|e| NewEvent::from_event(e).unwrap())
        .collect();
    store
        .append(&StreamId::new("Order", id), ExpectedVersion::Any, new)
        .await
        .unwrap()
        .events
}

fn ship(id: &str) -> ShipOrder {
    ShipOrder {
        order_id: id.into(),
        carrier: "dhl".into(),
    }
}

fn int(v: i64) -> Value {
    Value::I64(v)
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}
