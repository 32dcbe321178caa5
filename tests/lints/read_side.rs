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

    fn on_cancelled(&mut self, event: &OrderCancelled) -> Result<(), Box<dyn Error + Send + Sync>> {
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
