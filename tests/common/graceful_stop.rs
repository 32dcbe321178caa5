//! What the graceful-stop tests of the brokers share (`tests/rabbitmq_stop.rs`,
//! `tests/nats_stop.rs`): a handler that holds the first message until the test lets it go,
//! and the checks on the spans read back afterwards.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::HandlerError;
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute};
use opentelemetry::Value;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::Notify;
use uuid::Uuid;

/// The handler's future.
pub type Handled = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// A handler that records the events it handled; a held gate keeps its first call in the
/// handler until [`release`](Self::release).
#[derive(Clone)]
pub struct Gate {
    hold_first: bool,
    calls: Arc<AtomicUsize>,
    entered: Arc<Notify>,
    go: Arc<Notify>,
    handled: Arc<Mutex<Vec<Uuid>>>,
}

impl Gate {
    /// The first call waits for [`release`](Self::release).
    pub fn held() -> Self {
        Self::new(true)
    }

    /// No call waits.
    pub fn open() -> Self {
        Self::new(false)
    }

    fn new(hold_first: bool) -> Self {
        Self {
            hold_first,
            calls: Arc::default(),
            entered: Arc::default(),
            go: Arc::default(),
            handled: Arc::default(),
        }
    }

    /// The handler, for `subscribe_fn`.
    pub fn handler(&self) -> impl Fn(EventEnvelope) -> Handled + Send + Sync + 'static {
        let gate = self.clone();
        move |event| {
            let gate = gate.clone();
            Box::pin(async move {
                let call = gate.calls.fetch_add(1, Ordering::SeqCst);
                if gate.hold_first && call == 0 {
                    gate.entered.notify_one();
                    gate.go.notified().await;
                }
                gate.handled.lock().unwrap().push(event.event_id);
                Ok(())
            })
        }
    }

    /// Waits until the first call is in the handler.
    pub async fn entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the first message reached the handler");
    }

    /// Lets the first call finish.
    pub fn release(&self) {
        self.go.notify_one();
    }

    /// The events handled to the end, in order.
    pub fn handled(&self) -> Vec<Uuid> {
        self.handled.lock().unwrap().clone()
    }
}

/// Waits (up to 20 s) until `done` holds.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Every event of `published` handled exactly once, by one gate or the other.
pub fn each_handled_once(published: &[Uuid], first: &Gate, second: &Gate) {
    let mut handled = first.handled();
    handled.extend(second.handled());
    let mut expected = published.to_vec();
    handled.sort();
    expected.sort();
    assert_eq!(handled, expected, "each message handled once, none lost");
}

/// How the consume span of one message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A child of its publish span, `eventsource.delivery.mode=live`, no attempt.
    FirstDelivery,
    /// A new root linked to its publish span, `redelivery`, attempt 2.
    Redelivery,
}

/// The consume span of each message of `expected` (the event id, how it must read): one
/// per message, no other.
pub fn consume_spans_read(spans: &CapturedSpans, expected: &[(Uuid, Read)]) {
    let consumes = spans.all(attr::SPAN_BUS_CONSUME);
    assert_eq!(consumes.len(), expected.len(), "{}", spans.tree());
    let publishes = spans.all(attr::SPAN_BUS_PUBLISH);
    for (event_id, read) in expected {
        let id = Value::String(event_id.to_string().into());
        let of = |span: &&&SpanData| attribute(span, attr::MESSAGING_MESSAGE_ID) == Some(&id);
        let publish = publishes.iter().find(of).expect("the publish span");
        let consume: Vec<_> = consumes.iter().filter(of).collect();
        assert_eq!(consume.len(), 1, "one consume span of {event_id}");
        let consume = consume[0];
        let mode = attribute(consume, attr::DELIVERY_MODE);
        let attempt = attribute(consume, attr::DELIVERY_ATTEMPT);
        let producer = publish.span_context.span_id();
        match read {
            Read::FirstDelivery => {
                assert_eq!(
                    (consume.parent_span_id, mode, attempt),
                    (producer, Some(&live()), None),
                    "{event_id}: a first delivery, child of its publish span: {}",
                    spans.tree()
                );
            }
            Read::Redelivery => {
                let linked = consume
                    .links
                    .iter()
                    .any(|link| link.span_context.span_id() == producer);
                assert_eq!(
                    (consume.parent_span_id, mode, attempt, linked),
                    (
                        SpanId::INVALID,
                        Some(&redelivery()),
                        Some(&Value::I64(2)),
                        true
                    ),
                    "{event_id}: a redelivery, a root linked to its publish span: {}",
                    spans.tree()
                );
            }
        }
    }
}

fn live() -> Value {
    Value::String(attr::DELIVERY_LIVE.into())
}

fn redelivery() -> Value {
    Value::String(attr::DELIVERY_REDELIVERY.into())
}
