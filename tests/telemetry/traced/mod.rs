//! `#[traced]`: span names, kinds, attributes, nesting, errors, panics and switches.
//!
//! Every test captures the spans of its own thread (`#[tokio::test]` runs a current-thread
//! runtime). The process-wide switch is tested in `traced_process_switch.rs`.

mod failures;
mod naming;
mod nesting;
mod switches;

use std::fmt::{self, Display};
use std::sync::atomic::{AtomicUsize, Ordering};

use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::KeyValue;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};

// ---- a small domain, written as a user would ---------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} has no items")]
    Empty(String),
}

pub struct OrderId(u64);

impl Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ord-{}", self.0)
    }
}

pub struct OrderService {
    tracing: bool,
}

impl OrderService {
    #[traced]
    fn ping(&self) -> &'static str {
        "pong"
    }

    #[traced(
        fields(customer.id = customer_id, items.count = items.len(), order = %order_id, first = ?items.first()),
        enabled = self.tracing,
    )]
    pub async fn place_order(
        &self,
        order_id: OrderId,
        customer_id: &str,
        items: Vec<String>,
    ) -> Result<usize, OrderError> {
        tokio::task::yield_now().await;
        if items.is_empty() {
            return Err(OrderError::Empty(order_id.to_string()));
        }
        telemetry::set_attribute("order.priority", "express");
        Ok(items.len())
    }

    /// The switch is read per instance, and a field's side effect shows whether it ran.
    #[traced(enabled = self.tracing, fields(calls = count(calls)))]
    fn counted(&self, calls: &AtomicUsize) -> usize {
        calls.load(Ordering::SeqCst)
    }
}

fn count(calls: &AtomicUsize) -> usize {
    calls.fetch_add(1, Ordering::SeqCst) + 1
}

trait Notifier {
    fn notify(&self, recipient: &str) -> bool;
    async fn notify_later(&self, recipient: &str) -> Result<(), OrderError>;
}

pub struct EmailNotifier;

impl Notifier for EmailNotifier {
    #[traced(attributes("channel" = "email"), fields(recipient))]
    fn notify(&self, recipient: &str) -> bool {
        !recipient.is_empty()
    }

    #[traced(kind = producer)]
    async fn notify_later(&self, recipient: &str) -> Result<(), OrderError> {
        tokio::task::yield_now().await;
        if recipient.is_empty() {
            Err(OrderError::Empty("recipient".into()))
        } else {
            Ok(())
        }
    }
}

/// A trait written with `#[async_trait]` (re-exported by the runtime): `#[traced]` goes on
/// the methods of the impl, under `#[async_trait]`.
#[eventsource_runtime::async_trait]
trait Ledger {
    async fn post(&self, cents: i64) -> Result<i64, OrderError>;
}

struct MemoryLedger;

#[eventsource_runtime::async_trait]
impl Ledger for MemoryLedger {
    #[traced(fields(cents))]
    async fn post(&self, cents: i64) -> Result<i64, OrderError> {
        tokio::task::yield_now().await;
        tracing::info_span!("ledger.write").in_scope(|| {});
        if cents < 0 {
            return Err(OrderError::Empty("ledger".into()));
        }
        Ok(cents)
    }
}

#[traced]
fn compute_total(prices: &[u64]) -> u64 {
    prices.iter().sum()
}

#[traced(name = "notification_service.send_email", kind = client)]
fn send_email(to: &str) -> usize {
    to.len()
}

const CHANNEL_KEY: &str = "messaging.channel";

#[traced(attributes(
    "channel" = "sms",
    retries = 3,
    ratio = 0.5,
    urgent = true,
    offset = -2,
    { CHANNEL_KEY } = "sms",
))]
fn send_sms() {}

#[allow(clippy::too_many_arguments)]
#[traced(fields(a = a, b = b, c = c, d = d, e = e, f = f, name = name, flag = flag))]
fn integers(a: u8, b: u16, c: u32, d: u64, e: usize, f: i128, name: String, flag: bool) {
    let _ = (a, b, c, d, e, f, name, flag);
}

#[traced]
fn with_user_spans() {
    tracing::info!("computing");
    tracing::info_span!("user.child").in_scope(|| {});
}

#[traced(fields(count = items.len()))]
fn largest<T: PartialOrd + Copy>(items: &[T]) -> Option<T> {
    items.iter().copied().fold(None, |best, x| match best {
        Some(b) if b >= x => Some(b),
        _ => Some(x),
    })
}

#[traced(fields(label = %label))]
fn evens(label: impl Display, up_to: u32) -> impl Iterator<Item = u32> {
    let _ = label;
    (0..up_to).filter(|n| n % 2 == 0)
}

#[traced(ret)]
fn halve(n: i32) -> Option<i32> {
    (n % 2 == 0).then_some(n / 2)
}

#[traced]
fn validate(n: i32) -> Result<i32, OrderError> {
    if n < 0 {
        return Err(OrderError::Empty(format!("#{n}")));
    }
    Ok(n)
}

type Outcome = std::result::Result<u8, OrderError>;

#[traced(err)]
fn aliased(fail: bool) -> Outcome {
    if fail {
        Err(OrderError::Empty("alias".into()))
    } else {
        Ok(1)
    }
}

#[traced]
fn explode(message: &str) -> u32 {
    if !message.is_empty() {
        panic!("boom: {message}");
    }
    1
}

#[traced]
async fn explode_later() -> u32 {
    tokio::task::yield_now().await;
    panic!("async boom");
}

#[traced]
async fn outer_async() -> u32 {
    let inner = inner_async().await;
    tokio::task::yield_now().await;
    tracing::info_span!("user.after_await").in_scope(|| {});
    inner + 1
}

#[traced]
async fn inner_async() -> u32 {
    tokio::task::yield_now().await;
    41
}
