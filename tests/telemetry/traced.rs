//! `#[traced]`: span names, kinds, attributes, nesting, errors, panics and switches.
//!
//! Every test captures the spans of its own thread (`#[tokio::test]` runs a current-thread
//! runtime). The process-wide switch is tested in `traced_process_switch.rs`.

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

// ---- tests -------------------------------------------------------------------------------

#[test]
fn names_default_to_the_function_or_type_and_method() {
    let capture = capture();
    assert_eq!(compute_total(&[1, 2, 3]), 6);
    assert_eq!(OrderService { tracing: true }.ping(), "pong");
    assert!(EmailNotifier.notify("ada@example.com"));
    assert_eq!(send_email("ada"), 3);
    let spans = capture.spans();
    let total = spans.get("compute_total");
    assert_eq!(kind(total), SpanKind::Internal);
    assert_eq!(total.status, Status::Unset);
    let _ = spans.get("OrderService.ping");
    let notify = spans.get("EmailNotifier.notify");
    assert_eq!(attribute(notify, "channel"), Some(&Value::from("email")));
    assert_eq!(
        attribute(notify, "recipient"),
        Some(&Value::from("ada@example.com"))
    );
    let email = spans.get("notification_service.send_email");
    assert_eq!(kind(email), SpanKind::Client);
    assert_eq!(spans.len(), 4, "{}", spans.tree());
}

#[test]
fn static_attributes_are_recorded_with_their_types() {
    let capture = capture();
    send_sms();
    let spans = capture.spans();
    let sms = spans.get("send_sms");
    assert_eq!(attribute(sms, "channel"), Some(&Value::from("sms")));
    assert_eq!(attribute(sms, "retries"), Some(&Value::I64(3)));
    assert_eq!(attribute(sms, "ratio"), Some(&Value::F64(0.5)));
    assert_eq!(attribute(sms, "urgent"), Some(&Value::Bool(true)));
    assert_eq!(attribute(sms, "offset"), Some(&Value::I64(-2)));
    assert_eq!(attribute(sms, CHANNEL_KEY), Some(&Value::from("sms")));
}

#[test]
fn integer_fields_arrive_as_i64() {
    let capture = capture();
    integers(1, 2, 3, u64::MAX, 5, -6, "ada".into(), true);
    let spans = capture.spans();
    let span = spans.get("integers");
    // Beyond i64: its decimal string, never a wrong number.
    assert_eq!(
        attribute(span, "d"),
        Some(&Value::from("18446744073709551615"))
    );
    capture.clear();
    integers(1, 2, 3, 4, 5, -6, "ada".into(), true);
    let spans = capture.spans();
    let span = spans.get("integers");
    assert_eq!(attribute(span, "d"), Some(&Value::I64(4)));
    assert_eq!(attribute(span, "a"), Some(&Value::I64(1)));
    assert_eq!(attribute(span, "b"), Some(&Value::I64(2)));
    assert_eq!(attribute(span, "c"), Some(&Value::I64(3)));
    assert_eq!(attribute(span, "e"), Some(&Value::I64(5)));
    assert_eq!(attribute(span, "f"), Some(&Value::I64(-6)));
    assert_eq!(attribute(span, "name"), Some(&Value::from("ada")));
    assert_eq!(attribute(span, "flag"), Some(&Value::Bool(true)));
}

#[tokio::test]
async fn dynamic_fields_and_set_attribute() {
    let capture = capture();
    let service = OrderService { tracing: true };
    let placed = service
        .place_order(OrderId(7), "c-1", vec!["book".into(), "pen".into()])
        .await;
    assert_eq!(placed, Ok(2));
    let spans = capture.spans();
    let span = spans.get("OrderService.place_order");
    assert_eq!(attribute(span, "customer.id"), Some(&Value::from("c-1")));
    assert_eq!(attribute(span, "items.count"), Some(&Value::I64(2)));
    assert_eq!(attribute(span, "order"), Some(&Value::from("ord-7")));
    assert_eq!(
        attribute(span, "first"),
        Some(&Value::from("Some(\"book\")"))
    );
    assert_eq!(
        attribute(span, "order.priority"),
        Some(&Value::from("express"))
    );
    assert_eq!(span.status, Status::Unset);
    // Arguments are not recorded unless named.
    assert_eq!(attribute(span, "items"), None);
    assert_eq!(attribute(span, "order_id"), None);
}

#[test]
fn spans_nest_with_the_users_own_spans_and_logs() {
    let capture = capture();
    tracing::info_span!("user.parent").in_scope(with_user_spans);
    let spans = capture.spans();
    spans.assert_child_of("with_user_spans", "user.parent");
    spans.assert_child_of("user.child", "with_user_spans");
    let traced = spans.get("with_user_spans");
    assert_eq!(traced.events.events.len(), 1);
    assert_eq!(traced.events.events[0].name, "computing");
}

#[tokio::test]
async fn async_spans_stay_current_across_await() {
    let capture = capture();
    let user = tracing::info_span!("user.request");
    let answer = {
        use tracing::Instrument as _;
        outer_async().instrument(user).await
    };
    assert_eq!(answer, 42);
    let spans = capture.spans();
    spans.assert_child_of("outer_async", "user.request");
    spans.assert_child_of("inner_async", "outer_async");
    spans.assert_child_of("user.after_await", "outer_async");
}

#[tokio::test]
async fn an_err_ends_the_span_with_error_and_one_exception_event() {
    let capture = capture();
    assert!(validate(-1).is_err());
    assert!(validate(1).is_ok());
    let service = OrderService { tracing: true };
    assert!(
        service
            .place_order(OrderId(9), "c-2", vec![])
            .await
            .is_err()
    );
    assert!(EmailNotifier.notify_later("").await.is_err());
    assert_eq!(aliased(true), Err(OrderError::Empty("alias".into())));
    let spans = capture.spans();

    let failed = spans
        .all("validate")
        .into_iter()
        .find(|s| s.status != Status::Unset)
        .expect("a failed validate span");
    assert_eq!(failed.status, Status::error("order #-1 has no items"));
    let exceptions = events(failed, "exception");
    assert_eq!(exceptions.len(), 1);
    let has = |attrs: &[KeyValue], key: &str, value: &str| {
        attrs
            .iter()
            .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
    };
    assert!(has(
        exceptions[0],
        "exception.message",
        "order #-1 has no items"
    ));
    assert!(has(
        exceptions[0],
        "exception.type",
        std::any::type_name::<OrderError>()
    ));
    assert_eq!(
        spans
            .all("validate")
            .iter()
            .filter(|s| s.status == Status::Unset)
            .count(),
        1
    );

    let place = spans.get("OrderService.place_order");
    assert_eq!(place.status, Status::error("order ord-9 has no items"));
    assert_eq!(events(place, "exception").len(), 1);

    let later = spans.get("EmailNotifier.notify_later");
    assert_eq!(kind(later), SpanKind::Producer);
    assert_eq!(later.status, Status::error("order recipient has no items"));
    assert_eq!(events(later, "exception").len(), 1);

    let alias = spans.get("aliased");
    assert_eq!(alias.status, Status::error("order alias has no items"));
    assert_eq!(events(alias, "exception").len(), 1);
}

#[test]
fn a_panic_is_recorded_and_still_propagates() {
    let capture = capture();
    let caught = std::panic::catch_unwind(|| explode("now"));
    assert!(caught.is_err());
    let spans = capture.spans();
    let span = spans.get("explode");
    assert_eq!(span.status, Status::error("boom: now"));
    let exceptions = events(span, "exception");
    assert_eq!(exceptions.len(), 1);
    assert!(
        exceptions[0]
            .iter()
            .any(|kv| kv.key.as_str() == "exception.type" && kv.value.as_str() == "panic")
    );
}

#[tokio::test]
async fn an_async_panic_is_recorded_and_still_propagates() {
    let capture = capture();
    let joined = tokio::spawn(explode_later()).await;
    assert!(joined.unwrap_err().is_panic());
    let spans = capture.spans();
    let span = spans.get("explode_later");
    assert_eq!(span.status, Status::error("async boom"));
    assert_eq!(events(span, "exception").len(), 1);
}

#[test]
fn the_instance_switch_skips_the_span_and_its_fields() {
    let capture = capture();
    let calls = AtomicUsize::new(0);
    let off = OrderService { tracing: false };
    assert_eq!(off.counted(&calls), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a field was evaluated");
    assert!(capture.spans().is_empty());

    let on = OrderService { tracing: true };
    assert_eq!(on.counted(&calls), 1);
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("OrderService.counted"), "calls"),
        Some(&Value::I64(1))
    );
}

#[tokio::test]
async fn the_instance_switch_also_covers_async_methods() {
    let capture = capture();
    let off = OrderService { tracing: false };
    assert_eq!(
        off.place_order(OrderId(1), "c", vec!["x".into()]).await,
        Ok(1)
    );
    assert!(capture.spans().is_empty());
}

#[test]
fn generic_functions_and_impl_trait() {
    let capture = capture();
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest(&[1.5, 0.5]), Some(1.5));
    assert_eq!(evens("evens", 7).collect::<Vec<_>>(), [0, 2, 4, 6]);
    let spans = capture.spans();
    assert_eq!(spans.all("largest").len(), 2);
    let mut counts: Vec<_> = spans
        .all("largest")
        .iter()
        .map(|s| attribute(s, "count").cloned())
        .collect();
    counts.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(counts, [Some(Value::I64(2)), Some(Value::I64(3))]);
    assert_eq!(
        attribute(spans.get("evens"), "label"),
        Some(&Value::from("evens"))
    );
}

#[test]
fn ret_records_the_return_value() {
    let capture = capture();
    assert_eq!(halve(6), Some(3));
    let spans = capture.spans();
    assert_eq!(
        attribute(spans.get("halve"), "return.value"),
        Some(&Value::from("Some(3)"))
    );
}

#[tokio::test]
async fn async_trait_methods_are_traced_across_await() {
    let capture = capture();
    let ledger: &dyn Ledger = &MemoryLedger;
    assert_eq!(ledger.post(5).await, Ok(5));
    assert!(ledger.post(-1).await.is_err());
    let spans = capture.spans();
    let posts = spans.all("MemoryLedger.post");
    assert_eq!(posts.len(), 2, "{}", spans.tree());
    let ok = posts.iter().find(|s| s.status == Status::Unset).unwrap();
    assert_eq!(attribute(ok, "cents"), Some(&Value::I64(5)));
    let failed = posts.iter().find(|s| s.status != Status::Unset).unwrap();
    assert_eq!(failed.status, Status::error("order ledger has no items"));
    assert_eq!(events(failed, "exception").len(), 1);
    for write in spans.all("ledger.write") {
        assert!(
            posts
                .iter()
                .any(|p| write.parent_span_id == p.span_context.span_id())
        );
    }
}

// ---- an error's sources on its span, each said once ---------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
pub struct DiskFull;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Names its source in its text and exposes it.
    #[error("cannot save: {0}")]
    Named(#[source] DiskFull),
    /// Exposes its source only.
    #[error("cannot save")]
    Exposed(#[source] DiskFull),
}

/// `Display` but not `std::error::Error`.
#[derive(Debug)]
pub struct PlainError(&'static str);

impl Display for PlainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plain: {}", self.0)
    }
}

#[traced(err)]
fn save(named: bool) -> Result<(), SaveError> {
    Err(if named {
        SaveError::Named(DiskFull)
    } else {
        SaveError::Exposed(DiskFull)
    })
}

#[traced(err)]
fn plain() -> Result<(), PlainError> {
    Err(PlainError("no source"))
}

#[traced(err)]
fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(Box::new(SaveError::Exposed(DiskFull)))
}

/// The span's status description and its one `exception` event's message.
fn error_texts(span: &opentelemetry_sdk::trace::SpanData) -> (String, String) {
    let Status::Error { description } = &span.status else {
        panic!("{} did not end in error: {:?}", span.name, span.status);
    };
    let exceptions = events(span, "exception");
    assert_eq!(exceptions.len(), 1, "{}", span.name);
    let message = exceptions[0]
        .iter()
        .find(|kv| kv.key.as_str() == "exception.message")
        .expect("exception.message")
        .value
        .as_str()
        .into_owned();
    (description.to_string(), message)
}

#[test]
fn an_err_records_its_sources_once_each() {
    let capture = capture();
    assert!(save(true).is_err());
    assert!(save(false).is_err());
    assert!(plain().is_err());
    assert!(boxed().is_err());
    let spans = capture.spans();

    let saves: Vec<_> = spans.all("save").into_iter().map(error_texts).collect();
    let named = "cannot save: disk full";
    let exposed = "cannot save: disk full";
    assert_eq!(
        saves,
        [
            (named.into(), named.into()),
            (exposed.into(), exposed.into())
        ]
    );

    let plain = "plain: no source";
    assert_eq!(
        error_texts(spans.get("plain")),
        (plain.into(), plain.into())
    );

    assert_eq!(
        error_texts(spans.get("boxed")),
        (exposed.into(), exposed.into())
    );
}
