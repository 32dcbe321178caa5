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
