//! The graceful-stop scenarios, run by each broker's test (`tests/brokers/rabbitmq_stop.rs`,
//! `tests/brokers/nats_stop.rs`) on its own consumer groups: five messages published before any
//! consumer runs, a group with a prefetch of three stopped while its first message is held
//! in the handler, a new group for the rest, and the spans read back afterwards.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::{EventBus, HandlerError};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture};
use opentelemetry::Value;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::any_broker;
use crate::domain::{Order, sample_order};
use eventsource_test_support::groups::Running;

/// What the scenarios need of a broker's consumer group (prefetch 3, set by the test),
/// beyond what every test drives ([`any_broker::Group`]).
pub trait Group: any_broker::Group {
    /// The group with no drain window.
    #[must_use]
    fn without_drain(self) -> Self;

    /// The group with a stop timeout of `bound`.
    #[must_use]
    fn stopping_within(self, bound: Duration) -> Self;
}

/// The default drain window: the group stopped while its first message is in hand handles
/// the two it had prefetched, in order; a new group gets the last two; all five are first
/// deliveries (children of their publish spans), handled once.
pub async fn a_stop_handles_what_was_prefetched<G: Group>(
    bus: impl EventBus + Clone,
    group: impl Fn() -> G,
) {
    let capture = capture();
    let first = group();
    first.declare().await.expect("the group");
    let published = five_orders(bus).await;
    let (held, open) = stop_then_restart(&first, &group(), 2).await;
    assert_eq!(
        held.handled(),
        published[..3],
        "the one in hand, then the two prefetched"
    );
    each_handled_once(&published, &held, &open);
    let expected: Vec<_> = published
        .iter()
        .map(|id| (*id, Read::FirstDelivery))
        .collect();
    consume_spans_read(&capture.spans(), &expected);
}

/// No drain window: the two prefetched messages go back at once, and come to the next
/// consumer as retries (linked roots, attempt 2); the two never handed over stay first
/// deliveries.
pub async fn without_a_drain_window_the_prefetched_come_back_as_redeliveries<G: Group>(
    bus: impl EventBus + Clone,
    group: impl Fn() -> G,
) {
    let capture = capture();
    let first = group().without_drain();
    first.declare().await.expect("the group");
    let published = five_orders(bus).await;
    let (held, open) = stop_then_restart(&first, &group(), 4).await;
    assert_eq!(held.handled(), published[..1], "only the one in hand");
    each_handled_once(&published, &held, &open);
    let read = [
        Read::FirstDelivery,
        Read::Redelivery,
        Read::Redelivery,
        Read::FirstDelivery,
        Read::FirstDelivery,
    ];
    let expected: Vec<_> = published.iter().copied().zip(read).collect();
    consume_spans_read(&capture.spans(), &expected);
}

/// A handler that never returns: the group's stop gives it up once its stop timeout is over
/// (`run` returns within it), its message unacknowledged; the next group gets all five, the
/// one given up again, and handles each once.
pub async fn a_stop_gives_up_a_handler_that_outlasts_the_stop_timeout<G: Group>(
    bus: impl EventBus + Clone,
    group: impl Fn() -> G,
) {
    let bound = Duration::from_secs(1);
    let first = group().stopping_within(bound);
    first.declare().await.expect("the group");
    let published = five_orders(bus).await;
    let stuck = Gate::held();
    first.subscribe(stuck.subscriber());
    let running = Running::run(&first);
    stuck.entered().await;
    let asked = std::time::Instant::now();
    let stopped = tokio::time::timeout(bound * 5, running.stopping()).await;
    let took = asked.elapsed();
    stopped
        .expect("run returned within its stop timeout, and some")
        .expect("joined")
        .expect("stopped cleanly");
    assert!(
        took >= bound,
        "it waited for the handler for its stop timeout: {took:?}"
    );
    assert!(stuck.handled().is_empty(), "the handler never returned");

    let open = handled_by_the_next(&group(), 5).await;
    each_handled_once(&published, &stuck, &open);
}

/// Five orders placed (and published) before any consumer runs: their event ids, in order.
async fn five_orders(bus: impl EventBus) -> Vec<Uuid> {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let mut ids = Vec::new();
    for id in ["o-1", "o-2", "o-3", "o-4", "o-5"] {
        let outcome = orders.execute(sample_order(id, "ada")).await.unwrap();
        ids.extend(outcome.events.iter().map(|e| e.event_id));
    }
    ids
}

/// Starts `first` (its first message held in the handler), stops it gracefully while that
/// message is in hand, lets it go, then runs `next` until it handled `rest` messages: the
/// messages each group handled.
async fn stop_then_restart(first: &impl Group, next: &impl Group, rest: usize) -> (Gate, Gate) {
    let held = Gate::held();
    first.subscribe(held.subscriber());
    let running = Running::run(first);
    held.entered().await;
    let stopping = running.stopping();
    // The stop reaches the broker while the first message is still in its handler.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release();
    stopping.await.expect("joined").expect("stopped cleanly");

    (held, handled_by_the_next(next, rest).await)
}

/// Runs `next` until it handled `rest` messages (and a moment more, for a duplicate to show
/// up), then stops it: the messages it handled.
async fn handled_by_the_next(next: &impl Group, rest: usize) -> Gate {
    let open = Gate::open();
    next.subscribe(open.subscriber());
    let running = Running::run(next);
    until("the rest handled", || open.handled().len() >= rest).await;
    // Time for a duplicate to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    open
}

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
    fn held() -> Self {
        Self::new(true)
    }

    /// No call waits.
    fn open() -> Self {
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

    /// The handler, `send-confirmation`.
    fn subscriber(&self) -> impl EventHandler {
        handler_fn("send-confirmation", self.handler())
    }

    /// The handler's function.
    fn handler(&self) -> impl Fn(EventEnvelope) -> Handled + Send + Sync + 'static {
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
    async fn entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the first message reached the handler");
    }

    /// Lets the first call finish.
    fn release(&self) {
        self.go.notify_one();
    }

    /// The events handled to the end, in order.
    fn handled(&self) -> Vec<Uuid> {
        self.handled.lock().unwrap().clone()
    }
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    eventsource_test_support::groups::until(what, Duration::from_secs(20), done).await;
}

/// Every event of `published` handled exactly once, by one gate or the other.
fn each_handled_once(published: &[Uuid], first: &Gate, second: &Gate) {
    let mut handled = first.handled();
    handled.extend(second.handled());
    let mut expected = published.to_vec();
    handled.sort();
    expected.sort();
    assert_eq!(handled, expected, "each message handled once, none lost");
}

/// How the consume span of one message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A child of its publish span, `eventsource.delivery.mode=live`, no attempt.
    FirstDelivery,
    /// A new root linked to its publish span, `redelivery`, attempt 2.
    Redelivery,
}

/// The consume span of each message of `expected` (the event id, how it must read): one
/// per message, no other.
fn consume_spans_read(spans: &CapturedSpans, expected: &[(Uuid, Read)]) {
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
