//! The NATS JetStream bus against a real server: the broker conformance suite
//! (`testing::conformance::broker`: one trace from the publisher to the handlers, fan-out,
//! retries then dead letters, bad trace context, undecodable messages, graceful stop, the
//! relay's trace) and what only NATS does: subjects and patterns, batch mode, a message not
//! acknowledged in time, typed publish errors, recovery bounded by the ack wait.
//!
//! The server comes from `EVENTSOURCE_NATS_URL` (e.g. `nats://127.0.0.1:4222`, JetStream
//! on). Without it each test prints `skipped: EVENTSOURCE_NATS_URL not set` and passes,
//! unless `EVENTSOURCE_REQUIRE_NATS=1` (CI sets it): then each one fails. Every test works
//! on streams and subjects of its own and deletes them when it passes.

#[path = "../examples/domain/order.rs"]
mod domain;

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::{
    BusError, DeadLetterEntry, Dispatcher, EventBus, HandlerError, Idempotent,
    InMemoryProcessedMessages, UnavailableReason, handler_fn, wire,
};
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
use eventsource_runtime::nats::async_nats::HeaderMap;
use eventsource_runtime::nats::async_nats::jetstream::{self, Context};
use eventsource_runtime::nats::{ConsumerGroup, NatsBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::conformance::broker::{
    self, BoxFuture, BrokerFixture, RawMessage,
};
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics,
};
use futures_util::StreamExt as _;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::oneshot;

// ---- helpers -------------------------------------------------------------------------------

/// The server, or `None` (with a visible message) when there is none and none is required.
fn server_url(test: &str) -> Option<String> {
    match std::env::var("EVENTSOURCE_NATS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EVENTSOURCE_REQUIRE_NATS").as_deref() != Ok("1"),
                "{test}: EVENTSOURCE_REQUIRE_NATS=1 but EVENTSOURCE_NATS_URL is not set; \
                 the NATS tests must run"
            );
            let line = format!("{test}: skipped: EVENTSOURCE_NATS_URL not set\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// One test's server: streams and a subject prefix of its own, deleted on success.
struct Server {
    url: String,
    stream: String,
    prefix: String,
}

impl Server {
    fn open(test: &str) -> Option<Self> {
        let url = server_url(test)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        Some(Self {
            url,
            stream: format!("ES_TEST_{test}_{id}"),
            prefix: format!("es-test-{test}-{id}"),
        })
    }

    fn bus(&self) -> NatsBus {
        NatsBus::new(&self.url)
            .expect("a NATS URL")
            .with_stream(&self.stream)
            .with_subject_prefix(&self.prefix)
            .with_ack_timeout(Duration::from_secs(5))
    }

    /// A group with short retry delays.
    fn group(&self, bus: &NatsBus, name: &str, delays: &[u64]) -> ConsumerGroup {
        bus.consumer_group(name)
            .retry_delays(delays.iter().map(|ms| Duration::from_millis(*ms)))
    }

    /// A JetStream context of the test's own.
    async fn jetstream(&self) -> Context {
        let client = eventsource_runtime::nats::async_nats::connect(&self.url)
            .await
            .expect("the server");
        jetstream::new(client)
    }

    /// The live subject of an `Order.{event_type}` event.
    fn subject(&self, event_type: &str) -> String {
        format!("{}.Order.{event_type}", self.prefix)
    }

    /// Deletes the test's streams (their consumers go with them).
    async fn clean(self) {
        let js = self.jetstream().await;
        for suffix in ["", "_RETRY", "_DEAD"] {
            let _ = js.delete_stream(format!("{}{suffix}", self.stream)).await;
        }
    }
}

/// A running consumer group, stopped (gracefully) by [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    async fn start(group: &ConsumerGroup) -> Self {
        group.declare().await.expect("the group's consumers");
        let (stop, stopped) = oneshot::channel::<()>();
        let group = group.clone();
        let task = tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("joined").expect("stopped cleanly");
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A handler that counts its calls and fails the first `failures` of them.
fn counting(group: &ConsumerGroup, name: &'static str, failures: usize) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    group.subscribe_fn(name, move |_event| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(HandlerError::new(format!("{name} failed (call {call})")))
            } else {
                Ok(())
            }
        }
    });
    calls
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn named<'a>(spans: &'a CapturedSpans, name: &str) -> Vec<&'a SpanData> {
    spans.all(name)
}

fn order_placed() -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Order", "o-1"),
        version: 1,
        position: 1,
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({}).into(),
        metadata: Metadata::new(),
    }
}

/// Publishes a raw message with `headers` and `body` to `subject`, acknowledged.
async fn raw(server: &Server, subject: String, headers: HeaderMap, body: Vec<u8>) {
    let js = server.jetstream().await;
    js.publish_with_headers(subject, headers, body.into())
        .await
        .expect("sent")
        .await
        .expect("stored");
}

/// The bus metrics, captured for the whole binary (tests tell theirs apart by destination).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

const PUBLISH: &str = attr::SPAN_BUS_PUBLISH;
const CONSUME: &str = attr::SPAN_BUS_CONSUME;
const HANDLE: &str = attr::SPAN_BUS_HANDLE;

// ---- the broker conformance suite ------------------------------------------------------------

#[eventsource_runtime::async_trait]
impl BrokerFixture for Server {
    type Bus = NatsBus;
    type Group = ConsumerGroup;

    fn system(&self) -> &'static str {
        "nats"
    }

    fn bus(&self) -> NatsBus {
        Server::bus(self)
    }

    fn group(&self, bus: &NatsBus, name: &str, retry_delays: &[Duration]) -> ConsumerGroup {
        let delays: Vec<u64> = retry_delays
            .iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap())
            .collect();
        Server::group(self, bus, name, &delays)
    }

    fn dispatcher<'g>(&self, group: &'g ConsumerGroup) -> &'g Dispatcher {
        group.dispatcher()
    }

    /// The durable consumer, not the name given to `consumer_group`.
    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.consumer_name().to_owned()
    }

    async fn declare(&self, group: &ConsumerGroup) -> Result<(), BusError> {
        group.declare().await
    }

    fn run(group: ConsumerGroup, stop: BoxFuture<()>) -> BoxFuture<Result<(), BusError>> {
        Box::pin(async move { group.run(stop).await })
    }

    async fn dead_letter_count(&self, group: &ConsumerGroup) -> Result<u64, BusError> {
        group.dead_letters().count().await.map(u64::from)
    }

    async fn dead_letters(
        &self,
        group: &ConsumerGroup,
        max: usize,
    ) -> Result<Vec<DeadLetterEntry>, BusError> {
        group.dead_letters().list(max).await
    }

    async fn requeue_dead_letters(&self, group: &ConsumerGroup) -> Result<usize, BusError> {
        group.dead_letters().requeue().await
    }

    async fn purge_dead_letters(&self, group: &ConsumerGroup) -> Result<u64, BusError> {
        group.dead_letters().purge().await.map(u64::from)
    }

    /// Publishes to the event's live subject, or a retry to the group's retry subject.
    async fn send_raw(&self, _bus: &NatsBus, group: &ConsumerGroup, message: RawMessage<'_>) {
        let mut headers = HeaderMap::new();
        if let Some(traceparent) = message.traceparent {
            headers.insert(Metadata::TRACEPARENT, traceparent);
        }
        let subject = match message.retry {
            Some(retry) => {
                headers.insert(wire::HEADER_ATTEMPT, retry.attempt.to_string().as_str());
                let handlers = serde_json::to_string(retry.handlers).unwrap();
                headers.insert(wire::HEADER_HANDLERS, handlers.as_str());
                group.retry_subject().to_owned()
            }
            None => format!(
                "{}.{}.{}",
                self.prefix, message.aggregate_type, message.event_type
            ),
        };
        raw(self, subject, headers, message.body.to_vec()).await;
    }
}

/// One test of the suite: streams of its own, deleted when the scenario passes.
macro_rules! conformance {
    ($($test:ident => $scenario:path $(, $metrics:expr)?;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(server) = Server::open(stringify!($test)) else {
                    return;
                };
                $scenario(&server $(, $metrics)?).await;
                server.clean().await;
            }
        )*
    };
}

conformance! {
    fan_out_to_two_groups_shows_as_two_branches_of_one_trace =>
        broker::trace::fan_out;
    a_malformed_traceparent_starts_a_new_root_and_the_message_is_handled =>
        broker::trace::malformed_traceparent_starts_a_new_root;
    the_relay_carries_the_stored_trace_through_jetstream =>
        broker::trace::relay_continues_the_stored_trace;
    a_failing_handler_is_retried_then_dead_lettered_and_succeeds_once_moved_back =>
        broker::failures::retried_then_dead_lettered_then_moved_back, &METRICS;
    purge_empties_the_dead_letters =>
        broker::failures::purge_empties_the_dead_letters;
    an_undecodable_message_goes_to_the_dead_letters_with_the_reason =>
        broker::failures::undecodable_message_is_dead_lettered_with_the_reason;
    a_retry_for_a_handler_the_group_no_longer_has_is_dead_lettered_with_the_reason =>
        broker::failures::retry_for_an_unknown_handler_is_dead_lettered;
    shutdown_lets_the_handler_in_flight_finish_and_settles_it =>
        broker::failures::graceful_stop_finishes_the_handler_in_flight;
}

/// The suite's trace, and what only NATS' spans and metrics say: the subject on both
/// sides.
#[tokio::test]
async fn a_message_reaches_the_handlers_through_jetstream_as_one_trace() {
    let Some(server) = Server::open("one_trace") else {
        return;
    };
    let seen = broker::trace::one_trace(&server, &METRICS).await;
    let spans = &seen.spans;
    let subject = server.subject(&seen.event.event_type);
    for span in [spans.get(PUBLISH), spans.get(CONSUME)] {
        assert_eq!(
            attribute(span, attr::MESSAGING_DESTINATION_NAME),
            Some(&string(&subject))
        );
    }
    let destination = [
        (attr::MESSAGING_DESTINATION_NAME, subject.as_str()),
        (attr::MESSAGING_SYSTEM, "nats"),
        (attr::METRIC_ATTR_EVENT_TYPE, &*seen.event.event_type),
    ];
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &destination),
        1
    );
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &destination),
        1
    );
    server.clean().await;
}

#[tokio::test]
async fn a_group_bound_by_patterns_gets_only_the_matching_events() {
    let Some(server) = Server::open("patterns") else {
        return;
    };
    let bus = server.bus();
    // Two patterns: JetStream 2.9 filters by one subject, the group by the rest.
    let placed = server
        .group(&bus, "placed", &[50])
        .bind("Order.OrderPlaced")
        .bind("Cart.*");
    let shipped = server.group(&bus, "shipped", &[50]).bind("*.OrderShipped");
    let placed_calls = counting(&placed, "count", 0);
    let shipped_calls = counting(&shipped, "count", 0);
    let running = [
        Running::start(&placed).await,
        Running::start(&shipped).await,
    ];
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let shipment = ShipOrder {
        order_id: "o-1".into(),
        carrier: "ups".into(),
    };
    orders.execute(shipment).await.unwrap();
    until("each group got its event", || {
        placed_calls.load(Ordering::SeqCst) == 1 && shipped_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for group in running {
        group.stop().await;
    }
    assert_eq!(placed_calls.load(Ordering::SeqCst), 1);
    assert_eq!(shipped_calls.load(Ordering::SeqCst), 1);
    server.clean().await;
}

#[tokio::test]
async fn a_group_declared_again_with_other_patterns_takes_them() {
    let Some(server) = Server::open("rebind") else {
        return;
    };
    let bus = server.bus();
    server
        .group(&bus, "mailer", &[50])
        .bind("Order.OrderShipped")
        .declare()
        .await
        .unwrap();
    let group = server
        .group(&bus, "mailer", &[50])
        .bind("Order.OrderPlaced");
    let calls = counting(&group, "count", 0);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("the placed order", || calls.load(Ordering::SeqCst) == 1).await;
    running.stop().await;
    server.clean().await;
}

// ---- failures: retries, dead letters -------------------------------------------------------

// ---- failures: retries, dead letters -------------------------------------------------------

#[tokio::test]
async fn a_failed_handler_is_retried_alone_by_a_group_started_again() {
    let Some(server) = Server::open("retry_restart") else {
        return;
    };
    let bus = server.bus();
    // A long delay: the group stops while the retry waits, another one takes it.
    let group = server.group(&bus, "mailer", &[1500]);
    let mails = counting(&group, "send-confirmation", 1);
    let steady = counting(&group, "audit", 0);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("the first delivery", || mails.load(Ordering::SeqCst) == 1).await;
    running.stop().await;

    let again = server.group(&bus, "mailer", &[1500]);
    let mails_again = counting(&again, "send-confirmation", 0);
    let steady_again = counting(&again, "audit", 0);
    let running = Running::start(&again).await;
    until("the retry", || mails_again.load(Ordering::SeqCst) == 1).await;
    running.stop().await;
    assert_eq!(steady.load(Ordering::SeqCst), 1);
    assert_eq!(
        steady_again.load(Ordering::SeqCst),
        0,
        "only the failed handler"
    );
    server.clean().await;
}

#[tokio::test]
async fn batch_mode_hands_messages_pulled_together_to_one_consume_span() {
    let Some(server) = Server::open("batch") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]).batch(10);
    // The first call fails: its message alone is retried.
    let calls = counting(&group, "send-confirmation", 1);
    group.declare().await.unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let mut events = Vec::new();
    for id in ["o-1", "o-2", "o-3"] {
        events.extend(
            orders
                .execute(sample_order(id, "ada"))
                .await
                .unwrap()
                .events,
        );
    }
    bus.publish(&events).await.unwrap();
    let running = Running::start(&group).await;
    until("three messages and a retry", || {
        calls.load(Ordering::SeqCst) == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    let spans = capture.spans();
    let consumes = named(&spans, CONSUME);
    let batches: Vec<_> = consumes
        .iter()
        .filter(|c| attribute(c, attr::DELIVERY_MODE) == Some(&string(attr::DELIVERY_BATCH)))
        .collect();
    let counted: i64 = batches
        .iter()
        .map(
            |c| match attribute(c, attr::MESSAGING_BATCH_MESSAGE_COUNT) {
                Some(Value::I64(n)) => *n,
                other => panic!("a batch count, got {other:?}"),
            },
        )
        .sum();
    assert_eq!(counted, 3, "{}", spans.tree());
    assert!(
        batches.iter().any(|c| c.links.len() > 1),
        "{}",
        spans.tree()
    );
    for batch in &batches {
        assert_eq!(batch.parent_span_id, SpanId::INVALID, "a new root");
    }
    let retries = consumes
        .iter()
        .filter(|c| attribute(c, attr::DELIVERY_MODE) == Some(&string(attr::DELIVERY_REDELIVERY)))
        .count();
    assert_eq!(retries, 1, "{}", spans.tree());
    server.clean().await;
}

// ---- redelivery: not acknowledged in time ----------------------------------------------------

#[tokio::test]
async fn a_message_not_acknowledged_comes_back_as_a_linked_root_and_is_handled_once() {
    let Some(server) = Server::open("redelivered") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    let group = server
        .group(&bus, "mailer", &[50])
        .ack_wait(Duration::from_millis(500));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let sending = handler_fn("send-confirmation", move |_event| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), HandlerError>(()) }
    });
    group.subscribe(Idempotent::new(sending, InMemoryProcessedMessages::new()));
    group.declare().await.unwrap();

    // Published twice (a relay restarted before its checkpoint): JetStream keeps one.
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let events = orders
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    bus.publish(&events).await.unwrap();
    bus.publish(&events).await.unwrap();

    // A consumer of the group takes it and dies without acknowledging it.
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut taken = 0;
    while let Some(message) = batch.next().await {
        message.unwrap();
        taken += 1;
    }
    assert_eq!(taken, 1, "the duplicate was dropped");
    drop(batch);

    let running = Running::start(&group).await;
    until("handled", || calls.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once");

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    let consume = spans.get(CONSUME);
    assert_eq!(consume.parent_span_id, SpanId::INVALID, "a new root");
    assert!(
        consume.links.iter().any(|l| publishes
            .iter()
            .any(|p| p.span_context.span_id() == l.span_context.span_id())),
        "linked to the publish span"
    );
    assert_eq!(
        attribute(consume, attr::DELIVERY_MODE),
        Some(&string(attr::DELIVERY_REDELIVERY))
    );
    server.clean().await;
}

// ---- publishing errors ----------------------------------------------------------------------

#[tokio::test]
async fn a_subject_no_stream_takes_is_a_typed_rejection() {
    let Some(server) = Server::open("no_stream") else {
        return;
    };
    let capture = capture();
    // Nothing declared: no stream takes the subject, JetStream has no responder.
    let bus = server.bus();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let Some(BusError::Rejected { message_id, reason }) = outcome.publish_error() else {
        panic!("expected a rejection, got {:?}", outcome.publish);
    };
    assert_eq!(*message_id, outcome.events[0].event_id);
    assert!(reason.contains("no stream"), "{reason}");
    assert!(matches!(
        capture.spans().get(PUBLISH).status,
        Status::Error { .. }
    ));
    server.clean().await;
}

#[tokio::test]
async fn messages_of_one_publish_are_in_flight_together_and_each_span_ends_with_its_outcome() {
    let Some(server) = Server::open("in_flight") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    // A stream that only takes placed orders: the shipment in the middle is refused.
    let js = server.jetstream().await;
    js.create_stream(jetstream::stream::Config {
        name: server.stream.clone(),
        subjects: vec![server.subject("OrderPlaced")],
        ..Default::default()
    })
    .await
    .unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let mut events = orders
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let shipment = ShipOrder {
        order_id: "o-1".into(),
        carrier: "ups".into(),
    };
    events.extend(orders.execute(shipment).await.unwrap().events);
    events.extend(
        orders
            .execute(sample_order("o-2", "bob"))
            .await
            .unwrap()
            .events,
    );
    assert_eq!(events.len(), 3);

    let failure = bus.publish_stored(&events).await.unwrap_err();
    let BusError::Rejected { message_id, .. } = failure.error else {
        panic!("the shipment has no stream: {:?}", failure.error);
    };
    assert_eq!(
        message_id, events[1].event_id,
        "the failure names the shipment"
    );
    assert_eq!(
        failure.published.message_ids,
        [events[0].event_id],
        "only the messages acknowledged before the failure"
    );
    // The message after it was already sent: both placed orders are stored.
    let mut stream = js.get_stream(&server.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    assert_eq!(publishes.len(), 3);
    for (event, expected_error) in events.iter().zip([false, true, false]) {
        let id = string(&event.event_id.to_string());
        let span = publishes
            .iter()
            .find(|span| attribute(span, attr::MESSAGING_MESSAGE_ID) == Some(&id))
            .expect("a publish span per message");
        let is_error = matches!(span.status, Status::Error { .. });
        assert_eq!(is_error, expected_error, "{}", event.event_type);
    }
    server.clean().await;
}

#[tokio::test]
async fn a_large_publish_keeps_a_bounded_window_in_flight_and_stores_everything() {
    let Some(server) = Server::open("large") else {
        return;
    };
    let bus = server.bus().enable_tracing(false);
    bus.declare().await.unwrap();
    let events: Vec<EventEnvelope> = (0..1500).map(|_| order_placed()).collect();
    let report = bus.publish(&events).await.unwrap();
    assert_eq!(report.message_ids.len(), 1500);
    assert_eq!(report.message_ids[1499], events[1499].event_id);
    let js = server.jetstream().await;
    let mut stream = js.get_stream(&server.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1500);
    server.clean().await;
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_unavailable() {
    if server_url("down").is_none() {
        return;
    }
    let port = free_port();
    let bus = NatsBus::new(&format!("nats://user:secret@127.0.0.1:{port}")).unwrap();
    assert!(!format!("{bus:?}").contains("secret"), "{bus:?}");
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let published = tokio::time::timeout(Duration::from_secs(10), bus.publish(&events))
        .await
        .expect("a bounded wait");
    let Err(refused) = published else {
        panic!("expected unavailable, got {published:?}");
    };
    assert!(matches!(refused, BusError::Unavailable(_)), "{refused:?}");
    assert_eq!(
        refused.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused),
        "{}",
        chain(&refused)
    );
    let said = chain(&refused);
    assert!(
        said.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{said}"
    );
    assert!(!said.contains("secret"), "{said}");
    // A group's declare goes the same way.
    let declared = bus.consumer_group("mailer").declare().await.unwrap_err();
    assert_eq!(
        declared.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused)
    );
    let invalid = NatsBus::new("nats://no host:4222").unwrap_err();
    assert!(matches!(invalid, BusError::Unavailable(_)));
    assert_eq!(
        invalid.unavailable_reason(),
        Some(UnavailableReason::InvalidUrl)
    );
}

/// A TCP port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_planted_password_is_never_shown() {
    if server_url("planted_password").is_none() {
        return;
    }
    let secret = "s3cret-planted-4711";
    let bus = NatsBus::new(&format!("nats://user:{secret}@127.0.0.1:1")).unwrap();
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let published = tokio::time::timeout(Duration::from_secs(10), bus.publish(&events))
        .await
        .expect("a bounded wait");
    let refused = published.unwrap_err();
    assert_eq!(
        refused.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused),
        "{}",
        chain(&refused)
    );
    let declared = bus.declare().await.unwrap_err();
    let group = bus.consumer_group("mailer");
    let grouped = group.declare().await.unwrap_err();
    let dead = group.dead_letters().count().await.unwrap_err();
    for error in [&refused, &declared, &grouped, &dead] {
        for shown in [chain(error), format!("{error:?}")] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    for shown in [format!("{bus:?}"), format!("{group:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    for bad in [
        format!("nats://user:{secret}@127.0.0.1:notaport"),
        format!("http://user:{secret}@127.0.0.1:4222"),
    ] {
        let invalid = NatsBus::new(&bad).unwrap_err();
        assert_eq!(
            invalid.unavailable_reason(),
            Some(UnavailableReason::InvalidUrl)
        );
        for shown in [chain(&invalid), format!("{invalid:?}")] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

/// A `nats-server` of this test's own, with a user and password, killed when dropped.
struct AuthServer {
    child: std::process::Child,
    port: u16,
    store: std::path::PathBuf,
}

impl AuthServer {
    /// Started from `nats-server` on the `PATH` (or `/usr/sbin`), `None` when there is none.
    fn start(user: &str, password: &str) -> Option<Self> {
        let binary = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|binary| {
            std::process::Command::new(binary)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        })?;
        let port = free_port();
        let store = std::env::temp_dir().join(format!("es-nats-auth-{port}"));
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--user", user, "--pass", password])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, port, store };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test]
async fn refused_credentials_are_told_apart_and_the_password_is_never_shown() {
    if server_url("credentials").is_none() {
        return;
    }
    let secret = "s3cret-planted-4711";
    // The shared server has no users: a server of the test's own has one.
    let Some(server) = AuthServer::start("es", "p@ss/word") else {
        let line = "credentials: skipped: no nats-server binary to start a server with a user\n";
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    };
    let bus = NatsBus::new(&format!("nats://es:{secret}@127.0.0.1:{}", server.port)).unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), bus.declare())
        .await
        .expect("a bounded wait")
        .unwrap_err();
    assert_eq!(
        error.unavailable_reason(),
        Some(UnavailableReason::AuthenticationFailed),
        "{}",
        chain(&error)
    );
    let said = chain(&error);
    assert!(
        said.contains(&format!(
            "authentication refused at 127.0.0.1:{}",
            server.port
        )),
        "{said}"
    );
    for shown in [said, format!("{error:?}"), format!("{bus:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // No credentials at all: refused the same way.
    let anonymous = NatsBus::new(&format!("nats://127.0.0.1:{}", server.port)).unwrap();
    assert_eq!(
        anonymous.declare().await.unwrap_err().unavailable_reason(),
        Some(UnavailableReason::AuthenticationFailed)
    );
    // The right ones (URL-encoded in the URL) are sent and taken: the streams are declared
    // and a message published.
    let right = NatsBus::new(&format!(
        "nats://es:p%40ss%2Fword@127.0.0.1:{}",
        server.port
    ))
    .unwrap()
    .with_stream("ES_TEST_AUTH")
    .with_subject_prefix("es-test-auth");
    right
        .declare()
        .await
        .expect("declared with the right password");
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let report = right.publish(&events).await.expect("published");
    assert_eq!(report.message_ids.len(), events.len());
}

// ---- the contract ------------------------------------------------------------------------------

#[tokio::test]
async fn the_nats_spans_carry_the_documented_keys_and_no_other() {
    let Some(server) = Server::open("contract") else {
        return;
    };
    let contract = include_str!("../docs/telemetry.md");
    // Every key the contract names, in backticks.
    let documented: std::collections::BTreeSet<&str> = contract
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.contains('.') && !word.contains(' '))
        .collect();
    let capture = capture();
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 1);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("a failure, then the retry", || {
        calls.load(Ordering::SeqCst) == 2
    })
    .await;
    running.stop().await;

    let spans = capture.spans();
    let mut seen = std::collections::BTreeSet::new();
    for name in [PUBLISH, CONSUME, HANDLE] {
        for span in named(&spans, name) {
            assert_eq!(
                attribute(span, attr::MESSAGING_SYSTEM).is_some(),
                name != HANDLE
            );
            for kv in &span.attributes {
                let key = kv.key.as_str().to_owned();
                assert!(
                    documented.contains(key.as_str()),
                    "`{key}` on `{name}` is not in docs/telemetry.md"
                );
                seen.insert(key);
            }
        }
    }
    for key in [
        attr::MESSAGING_DESTINATION_NAME,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        attr::MESSAGING_MESSAGE_ID,
        attr::DELIVERY_ATTEMPT,
        attr::SERVER_ADDRESS,
    ] {
        assert!(documented.contains(key), "`{key}` documented");
        assert!(seen.contains(key), "`{key}` seen on the NATS spans");
    }
    server.clean().await;
}

/// A message on an `Order` subject whose event belongs to another aggregate type (a
/// producer of another kind published it there) is skipped, counted with
/// `reason=misrouted` and logged, as Kafka skips such a record on its topic; the message
/// after it is handled.
#[tokio::test]
async fn a_message_of_another_aggregate_type_on_an_events_subject_is_skipped_and_counted() {
    let Some(server) = Server::open("misrouted") else {
        return;
    };
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("send-confirmation", move |event| {
        seen.lock().unwrap().push(event.event_id);
        async { Ok::<(), HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    let mut misrouted = order_placed();
    misrouted.stream = StreamId::new("Customer", "c-1");
    misrouted.event_type = "CustomerRegistered".into();
    let subject = server.subject("OrderPlaced");
    raw(
        &server,
        subject.clone(),
        HeaderMap::new(),
        wire::encode(&misrouted).unwrap(),
    )
    .await;
    let placed = order_placed();
    raw(
        &server,
        subject.clone(),
        HeaderMap::new(),
        wire::encode(&placed).unwrap(),
    )
    .await;
    until("the message after it handled", || {
        !handled.lock().unwrap().is_empty()
    })
    .await;
    running.stop().await;
    assert_eq!(*handled.lock().unwrap(), [placed.event_id]);
    assert_eq!(
        METRICS.total(
            attr::METRIC_BUS_MESSAGES_SKIPPED,
            &[
                (attr::MESSAGING_SYSTEM, "nats"),
                (attr::MESSAGING_DESTINATION_NAME, subject.as_str()),
                (attr::METRIC_ATTR_SKIP_REASON, "misrouted"),
            ],
        ),
        1
    );
    server.clean().await;
}

// ---- recovery: bounded by the ack wait, not by the handlers --------------------------------

/// Publishes `count` `OrderPlaced` events with ids of their own; returns the ids.
async fn publish_orders(bus: &NatsBus, count: usize) -> Vec<uuid::Uuid> {
    let events: Vec<EventEnvelope> = (0..count).map(|_| order_placed()).collect();
    bus.publish(&events).await.expect("published");
    events.iter().map(|event| event.event_id).collect()
}

/// A handler that records each event id it is called with, after `work(call)`.
fn recording(
    group: &ConsumerGroup,
    work: impl Fn(usize) -> Duration + Send + Sync + 'static,
) -> Arc<std::sync::Mutex<Vec<uuid::Uuid>>> {
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    let calls = Arc::new(AtomicUsize::new(0));
    group.subscribe_fn("send-confirmation", move |event| {
        let takes = work(calls.fetch_add(1, Ordering::SeqCst));
        let seen = Arc::clone(&seen);
        let id = event.event_id;
        async move {
            tokio::time::sleep(takes).await;
            seen.lock().unwrap().push(id);
            Ok::<(), HandlerError>(())
        }
    });
    handled
}

/// Whether every id of `expected` was handled, each once.
fn each_once(handled: &[uuid::Uuid], expected: &[uuid::Uuid]) -> bool {
    let mut handled = handled.to_vec();
    let mut expected = expected.to_vec();
    handled.sort_unstable();
    expected.sort_unstable();
    handled == expected
}

#[tokio::test]
async fn a_dead_consumers_messages_reach_the_others_within_seconds_by_default() {
    let Some(server) = Server::open("dead_consumer") else {
        return;
    };
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let handled = recording(&group, |_| Duration::ZERO);
    group.declare().await.unwrap();
    let ids = publish_orders(&bus, 24).await;

    // A consumer of the group takes a prefetch of messages and dies without a word: until
    // JetStream hands them on, the group may have no more than that unacknowledged.
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let prefetch = usize::from(eventsource_runtime::nats::DEFAULT_PREFETCH);
    let mut batch = consumer
        .fetch()
        .max_messages(prefetch)
        .messages()
        .await
        .unwrap();
    let mut taken = 0;
    while let Some(message) = batch.next().await {
        message.unwrap();
        taken += 1;
    }
    assert_eq!(taken, prefetch);
    drop(batch);
    let died = std::time::Instant::now();

    let running = Running::start(&group).await;
    // The default ack wait and a pull request's expiry, with room for a loaded machine.
    let bound = Duration::from_secs(10);
    while handled.lock().unwrap().len() < ids.len() && died.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered_in = died.elapsed();
    running.stop().await;
    assert!(
        each_once(&handled.lock().unwrap(), &ids),
        "every message handled once within {bound:?} of the consumer's death \
         ({} of {} after {recovered_in:?})",
        handled.lock().unwrap().len(),
        ids.len()
    );
    server.clean().await;
}

#[tokio::test]
async fn handlers_slower_than_the_ack_wait_keep_their_messages_and_those_waiting() {
    let Some(server) = Server::open("slow_handlers") else {
        return;
    };
    let bus = server.bus();
    let ack_wait = Duration::from_millis(600);
    let group = server
        .group(&bus, "mailer", &[50])
        .ack_wait(ack_wait)
        .prefetch(4);
    // The first handling takes twice the ack wait; the others wait their turn longer still.
    let handled = recording(&group, move |call| {
        if call == 0 {
            ack_wait * 2
        } else {
            ack_wait / 2
        }
    });
    group.declare().await.unwrap();
    let ids = publish_orders(&bus, 4).await;
    let running = Running::start(&group).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while handled.lock().unwrap().len() < ids.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;

    assert!(
        each_once(&handled.lock().unwrap(), &ids),
        "each handled once: {:?} of {ids:?}",
        handled.lock().unwrap()
    );
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        (info.num_redelivered, info.num_ack_pending),
        (0, 0),
        "nothing was handed on or left unacknowledged"
    );
    server.clean().await;
}
