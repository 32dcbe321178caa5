//! The RabbitMQ bus against a real broker: one trace from the command to the handlers,
//! fan-out to two groups, retries then dead letters (listed, moved back, purged), typed
//! publish errors, bad trace context, undecodable messages, graceful shutdown.
//!
//! The broker comes from `EVENTSOURCE_AMQP_URL` (e.g.
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Without it each test prints `skipped:
//! EVENTSOURCE_AMQP_URL not set` and passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1` (CI sets
//! it): then each one fails. Every test works on an exchange and queues of its own and
//! deletes them when it passes.

#[path = "../examples/domain/order.rs"]
mod domain;

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError, UnavailableReason, wire};
use eventsource_runtime::event::Metadata;
use eventsource_runtime::prelude::*;
use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus, Unroutable};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::propagation;
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics, kind,
};
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::oneshot;

// ---- helpers -------------------------------------------------------------------------------

/// The broker, or `None` (with a visible message) when there is none and none is required.
fn broker_url(test: &str) -> Option<String> {
    match std::env::var("EVENTSOURCE_AMQP_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EVENTSOURCE_REQUIRE_RABBITMQ").as_deref() != Ok("1"),
                "{test}: EVENTSOURCE_REQUIRE_RABBITMQ=1 but EVENTSOURCE_AMQP_URL is not set; \
                 the RabbitMQ tests must run"
            );
            let line = format!("{test}: skipped: EVENTSOURCE_AMQP_URL not set\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// One test's broker: an exchange of its own, deleted with its queues on success.
struct Broker {
    url: String,
    exchange: String,
    queues: std::sync::Mutex<Vec<String>>,
}

impl Broker {
    fn open(test: &str) -> Option<Self> {
        let url = broker_url(test)?;
        let exchange = format!("es-test-{test}-{}", uuid::Uuid::now_v7().simple());
        Some(Self {
            url,
            exchange,
            queues: std::sync::Mutex::default(),
        })
    }

    fn bus(&self) -> RabbitMqBus {
        RabbitMqBus::new(&self.url)
            .expect("an AMQP URL")
            .with_exchange(&self.exchange)
            .with_confirm_timeout(Duration::from_secs(5))
    }

    /// A group with short retry delays, remembered for the cleanup.
    fn group(&self, bus: &RabbitMqBus, name: &str, delays: &[u64]) -> ConsumerGroup {
        let group = bus
            .consumer_group(name)
            .retry_delays(delays.iter().map(|ms| Duration::from_millis(*ms)));
        let mut queues = self.queues.lock().unwrap();
        queues.push(group.queue().to_owned());
        queues.push(group.dead_letters().queue().to_owned());
        for ms in delays {
            queues.push(format!("{}.retry.{ms}ms", group.queue()));
        }
        group
    }

    async fn connection(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("the broker")
    }

    /// Deletes the test's queues and exchange.
    async fn clean(self) {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.expect("a channel");
        let queues = self.queues.lock().unwrap().clone();
        for queue in queues {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = connection.close(200, "clean".into()).await;
    }
}

/// A running consumer group, stopped (gracefully) by [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    async fn start(group: &ConsumerGroup) -> Self {
        group.declare().await.expect("the group's queues");
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

/// The bus metrics, captured for the whole binary (tests tell theirs apart by destination).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

const PUBLISH: &str = attr::SPAN_BUS_PUBLISH;
const CONSUME: &str = attr::SPAN_BUS_CONSUME;
const HANDLE: &str = attr::SPAN_BUS_HANDLE;

// ---- the trace across the broker -----------------------------------------------------------

#[tokio::test]
async fn a_command_reaches_the_handlers_through_the_broker_as_one_trace() {
    let Some(broker) = Broker::open("one_trace") else {
        return;
    };
    LazyLock::force(&METRICS);
    let capture = capture();
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start(&group).await;

    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert!(outcome.publish_error().is_none(), "{:?}", outcome.publish);
    until("the handler ran", || calls.load(Ordering::SeqCst) == 1).await;
    running.stop().await;

    let spans = capture.spans();
    let command = spans.get("command.PlaceOrder");
    let publish = spans.get(PUBLISH);
    let consume = spans.get(CONSUME);
    let handle = spans.get(HANDLE);
    spans.assert_child_of(PUBLISH, "command.PlaceOrder");
    spans.assert_child_of(CONSUME, PUBLISH);
    spans.assert_child_of(HANDLE, CONSUME);
    assert_eq!(
        consume.span_context.trace_id(),
        command.span_context.trace_id()
    );
    assert_eq!(kind(publish), SpanKind::Producer);
    assert_eq!(kind(consume), SpanKind::Consumer);

    // The messaging conventions.
    let key = "Order.OrderPlaced";
    assert_eq!(
        attribute(publish, attr::MESSAGING_SYSTEM),
        Some(&string("rabbitmq"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("send"))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_DESTINATION_NAME),
        Some(&string(&format!("{}:{key}", broker.exchange)))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY),
        Some(&string(key))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_MESSAGE_ID),
        Some(&string(&outcome.events[0].event_id.to_string()))
    );
    assert!(attribute(publish, attr::SERVER_ADDRESS).is_some());
    assert!(matches!(
        attribute(publish, attr::SERVER_PORT),
        Some(Value::I64(_))
    ));
    assert_eq!(
        attribute(consume, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("process"))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_DESTINATION_NAME),
        Some(&string(&format!(
            "{}:{key}:{}",
            broker.exchange,
            group.queue()
        )))
    );
    // RabbitMQ has no consumer groups: the group's queue stands in.
    assert_eq!(
        attribute(consume, attr::MESSAGING_CONSUMER_GROUP_NAME),
        Some(&string(group.queue()))
    );
    assert!(matches!(
        attribute(consume, attr::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG),
        Some(Value::I64(_))
    ));
    assert_eq!(
        attribute(handle, attr::HANDLER_NAME),
        Some(&string("send-confirmation"))
    );

    // The contract's bus metrics, with `messaging.system` = `rabbitmq` (the destination is
    // this test's own).
    let sent = format!("{}:{key}", broker.exchange);
    let processed = format!("{sent}:{}", group.queue());
    let system = (attr::MESSAGING_SYSTEM, "rabbitmq");
    let event_type = (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced");
    let published = [
        (attr::MESSAGING_DESTINATION_NAME, sent.as_str()),
        system,
        event_type,
    ];
    let consumed = [
        (attr::MESSAGING_DESTINATION_NAME, processed.as_str()),
        system,
        event_type,
    ];
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &published),
        1
    );
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &consumed),
        1
    );
    let handler = [
        (attr::METRIC_ATTR_HANDLER_NAME, "send-confirmation"),
        event_type,
    ];
    assert!(METRICS.total(attr::METRIC_BUS_HANDLER_DURATION, &handler) >= 1);
    broker.clean().await;
}

#[tokio::test]
async fn fan_out_to_two_groups_shows_as_two_branches_of_one_trace() {
    let Some(broker) = Broker::open("fan_out") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let mailer = broker.group(&bus, "mailer", &[50]);
    let shipping = broker.group(&bus, "shipping", &[50]).bind("Order.*");
    let mails = counting(&mailer, "send-confirmation", 0);
    let notes = counting(&shipping, "notify-shipping", 0);
    let running = [
        Running::start(&mailer).await,
        Running::start(&shipping).await,
    ];

    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("both groups handled it", || {
        mails.load(Ordering::SeqCst) == 1 && notes.load(Ordering::SeqCst) == 1
    })
    .await;
    for group in running {
        group.stop().await;
    }

    let spans = capture.spans();
    let publish = spans.get(PUBLISH);
    let consumes = named(&spans, CONSUME);
    assert_eq!(consumes.len(), 2, "{}", spans.tree());
    for consume in &consumes {
        assert_eq!(consume.parent_span_id, publish.span_context.span_id());
        assert_eq!(
            consume.span_context.trace_id(),
            publish.span_context.trace_id()
        );
    }
    let mut groups: Vec<String> = consumes
        .iter()
        .filter_map(|c| attribute(c, attr::MESSAGING_CONSUMER_GROUP_NAME))
        .map(|v| v.as_str().into_owned())
        .collect();
    groups.sort();
    assert_eq!(groups, [mailer.queue(), shipping.queue()]);
    broker.clean().await;
}

// ---- failures: retries, dead letters -------------------------------------------------------

#[tokio::test]
async fn a_failing_handler_is_retried_then_dead_lettered_and_succeeds_once_moved_back() {
    let Some(broker) = Broker::open("dead_letters") else {
        return;
    };
    LazyLock::force(&METRICS);
    let capture = capture();
    let bus = broker.bus();
    // Three deliveries in all; the first three calls fail.
    let group = broker.group(&bus, "mailer", &[30, 60]);
    let mails = counting(&group, "send-confirmation", 3);
    let steady = counting(&group, "audit", 0);
    let running = Running::start(&group).await;

    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let dead = group.dead_letters();
    until("three deliveries", || mails.load(Ordering::SeqCst) == 3).await;
    for _ in 0..500 {
        if dead.count().await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead.count().await.unwrap(), 1);
    assert_eq!(
        steady.load(Ordering::SeqCst),
        1,
        "only the failed handler again"
    );

    let letters: Vec<_> = dead.list(10).await.unwrap();
    let letters: Vec<_> = letters.iter().filter_map(|e| e.as_failed()).collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message.message_id, outcome.events[0].event_id);
    assert_eq!(letters[0].handler, "send-confirmation");
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("call 2"), "{}", letters[0].error);
    // Counted once the broker took it (other tests of this binary may dead-letter too).
    let dead_lettered = [
        (attr::MESSAGING_SYSTEM, "rabbitmq"),
        (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
    ];
    until("the dead letter counted", || {
        METRICS.total(attr::METRIC_BUS_MESSAGES_DEAD_LETTERED, &dead_lettered) >= 1
    })
    .await;
    assert_eq!(dead.count().await.unwrap(), 1, "listing leaves them there");

    // Moved back: the handler (now working) gets it, alone, and nothing is left.
    assert_eq!(dead.requeue().await.unwrap(), 1);
    until("the fourth call", || mails.load(Ordering::SeqCst) == 4).await;
    running.stop().await;
    assert_eq!(dead.count().await.unwrap(), 0);
    assert_eq!(steady.load(Ordering::SeqCst), 1);

    // The retries are new roots linked to the publish span.
    let spans = capture.spans();
    let publish = spans.get(PUBLISH);
    let consumes = named(&spans, CONSUME);
    assert_eq!(consumes.len(), 4, "{}", spans.tree());
    let live: Vec<_> = consumes
        .iter()
        .filter(|c| c.parent_span_id == publish.span_context.span_id())
        .collect();
    assert_eq!(live.len(), 1, "one live delivery");
    let retries: Vec<_> = consumes
        .iter()
        .filter(|c| c.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(retries.len(), 3);
    for retry in retries {
        assert!(
            retry
                .links
                .iter()
                .any(|l| l.span_context.span_id() == publish.span_context.span_id()),
            "linked to the publish span"
        );
        assert_eq!(
            attribute(retry, attr::DELIVERY_MODE),
            Some(&string(attr::DELIVERY_REDELIVERY))
        );
    }
    broker.clean().await;
}

#[tokio::test]
async fn purge_empties_the_dead_letters() {
    let Some(broker) = Broker::open("purge") else {
        return;
    };
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[]);
    let _always = counting(&group, "broken", usize::MAX);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders.execute(sample_order("o-2", "bob")).await.unwrap();
    let dead = group.dead_letters();
    for _ in 0..500 {
        if dead.count().await.unwrap() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    assert_eq!(dead.purge().await.unwrap(), 2);
    assert_eq!(dead.count().await.unwrap(), 0);
    broker.clean().await;
}

// ---- publishing errors ----------------------------------------------------------------------

#[tokio::test]
async fn an_unroutable_message_is_a_typed_error_not_a_silent_drop() {
    let Some(broker) = Broker::open("unroutable") else {
        return;
    };
    let capture = capture();
    // No group bound: nothing would keep the message.
    let bus = broker.bus();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let Some(BusError::Rejected { message_id, reason }) = outcome.publish_error() else {
        panic!("expected a rejection, got {:?}", outcome.publish);
    };
    assert_eq!(*message_id, outcome.events[0].event_id);
    assert!(reason.contains("returned"), "{reason}");
    let spans = capture.spans();
    assert!(matches!(
        spans.get(PUBLISH).status,
        opentelemetry::trace::Status::Error { .. }
    ));

    // Told to skip them, the bus publishes it to nobody, successfully.
    capture.clear();
    let skipping = broker.bus().on_unroutable(Unroutable::Skip);
    let report = skipping.publish(&outcome.events).await.unwrap();
    assert_eq!(report.message_ids, [outcome.events[0].event_id]);
    assert_eq!(capture.spans().get(PUBLISH).status, Status::Unset);
    broker.clean().await;
}

#[tokio::test]
async fn messages_of_one_publish_are_in_flight_together_and_each_span_ends_with_its_outcome() {
    let Some(broker) = Broker::open("in_flight") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    // Only placed orders are routed: a shipment in the middle comes back.
    let group = broker
        .group(&bus, "placed", &[50])
        .bind("Order.OrderPlaced");
    let calls = counting(&group, "count", 0);
    let running = Running::start(&group).await;
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

    let Err(BusError::Rejected { message_id, .. }) = bus.publish(&events).await else {
        panic!("the shipment is unroutable");
    };
    assert_eq!(
        message_id, events[1].event_id,
        "the failure names the shipment"
    );
    // The message after it was already sent: both placed orders arrive.
    until("both orders arrived", || calls.load(Ordering::SeqCst) == 2).await;
    running.stop().await;

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    assert_eq!(publishes.len(), 3);
    for (event, expected_error) in events.iter().zip([false, true, false]) {
        let id = string(&event.event_id.to_string());
        let span = publishes
            .iter()
            .find(|span| attribute(span, attr::MESSAGING_MESSAGE_ID) == Some(&id))
            .expect("a publish span per message");
        let is_error = matches!(span.status, opentelemetry::trace::Status::Error { .. });
        assert_eq!(is_error, expected_error, "{}", event.event_type);
    }
    broker.clean().await;
}

#[tokio::test]
async fn a_broker_that_does_not_answer_is_unavailable() {
    if broker_url("down").is_none() {
        return;
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bus = RabbitMqBus::new(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f")).unwrap();
    let events = CommandService::<Order>::new(InMemoryEventStore::new())
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    let refused = bus.publish(&events).await.unwrap_err();
    assert!(matches!(refused, BusError::Unavailable(_)));
    assert_eq!(
        refused.unavailable_reason(),
        Some(UnavailableReason::ConnectionRefused)
    );
    let said = chain(&refused);
    assert!(
        said.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{said}"
    );
    let invalid = RabbitMqBus::new("not a url").unwrap_err();
    assert_eq!(
        invalid.unavailable_reason(),
        Some(UnavailableReason::InvalidUrl)
    );
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
async fn refused_credentials_are_told_apart_and_the_password_is_never_shown() {
    let Some(url) = broker_url("credentials") else {
        return;
    };
    let secret = "s3cret-planted-4711";
    let (_, rest) = url.split_once('@').expect("a URL with credentials");
    let wrong = format!("amqp://guest:{secret}@{rest}");
    let bus = RabbitMqBus::new(&wrong).unwrap();
    let error = bus.declare().await.unwrap_err();
    assert_eq!(
        error.unavailable_reason(),
        Some(UnavailableReason::AuthenticationFailed),
        "{}",
        chain(&error)
    );
    for shown in [chain(&error), format!("{error:?}"), format!("{bus:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let bad = format!("amqp://guest:{secret}@127.0.0.1:notaport/%2f");
    let invalid = RabbitMqBus::new(&bad).unwrap_err();
    for shown in [chain(&invalid), format!("{invalid:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

// ---- foreign and damaged messages ----------------------------------------------------------

/// Publishes a raw message with `headers` and `body` straight to the group's queue.
async fn raw(broker: &Broker, group: &ConsumerGroup, headers: FieldTable, body: &[u8]) {
    let connection = broker.connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            group.queue().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = connection.close(200, "sent".into()).await;
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_root_and_the_message_is_handled() {
    let Some(broker) = Broker::open("bad_context") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start(&group).await;

    // A well-formed message as our publisher would send it, its traceparent garbled.
    let store = InMemoryEventStore::new();
    let event = CommandService::<Order>::new(store)
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events
        .remove(0);
    let body = serde_json::json!({
        "event_id": event.event_id, "stream": event.stream, "version": event.version,
        "position": event.position, "event_type": event.event_type,
        "schema_version": event.schema_version, "timestamp": event.timestamp,
        "payload": event.payload, "metadata": Metadata::new(),
    });
    let mut headers = FieldTable::default();
    headers.insert(
        Metadata::TRACEPARENT.into(),
        AMQPValue::LongString(LongString::from("00-not-a-trace-01")),
    );
    let before = propagation::malformed_context_count();
    raw(&broker, &group, headers, body.to_string().as_bytes()).await;
    until("the handler ran", || calls.load(Ordering::SeqCst) == 1).await;
    running.stop().await;

    assert!(propagation::malformed_context_count() > before, "counted");
    let spans = capture.spans();
    let consume = spans.get(CONSUME);
    assert_eq!(consume.parent_span_id, SpanId::INVALID, "a new root");
    broker.clean().await;
}

#[tokio::test]
async fn an_undecodable_message_goes_to_the_dead_letters_with_the_reason() {
    let Some(broker) = Broker::open("undecodable") else {
        return;
    };
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start(&group).await;
    raw(&broker, &group, FieldTable::default(), b"{ not an event").await;
    let dead = group.dead_letters();
    for _ in 0..500 {
        if dead.count().await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    assert_eq!(dead.count().await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let listed = dead.list(10).await.unwrap();
    assert_eq!(listed.len(), 1, "listed, with its reason");
    let letter = listed[0].as_undecodable().expect("an undecodable letter");
    assert_eq!(letter.body, b"{ not an event");
    assert!(
        letter.reason.contains("undecodable message body"),
        "{}",
        letter.reason
    );
    assert_eq!(dead.count().await.unwrap(), 1, "listing leaves it there");
    broker.clean().await;
}

#[tokio::test]
async fn a_retry_for_a_handler_the_group_no_longer_has_is_dead_lettered_with_the_reason() {
    let Some(broker) = Broker::open("unknown_handler") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start(&group).await;
    // A retry written before a deploy renamed the handler `send-mail`.
    let event = eventsource_runtime::event::EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: eventsource_runtime::event::StreamId::new("Order", "o-1"),
        version: 1,
        position: 1,
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({}).into(),
        metadata: Metadata::new(),
    };
    let body = wire::encode(&event).unwrap();
    let mut headers = FieldTable::default();
    headers.insert(wire::HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(2));
    headers.insert(
        wire::HEADER_HANDLERS.into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongString(LongString::from("send-mail"))].into()),
    );
    raw(&broker, &group, headers, &body).await;
    let dead = group.dead_letters();
    for _ in 0..500 {
        if dead.count().await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    assert_eq!(
        dead.count().await.unwrap(),
        1,
        "dead-lettered, not acknowledged"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no other handler ran");
    let listed = dead.list(10).await.unwrap();
    let letter = listed[0].as_failed().expect("a failed letter");
    assert_eq!(letter.message.message_id, event.event_id);
    assert_eq!(letter.handler, "send-mail");
    assert!(
        letter.error.contains("no handler named `send-mail`"),
        "{}",
        letter.error
    );
    let spans = capture.spans();
    let consume = spans.get(CONSUME);
    assert!(
        matches!(&consume.status, Status::Error { description } if description.contains("send-mail")),
        "{:?}",
        consume.status
    );
    broker.clean().await;
}

// ---- shutdown ---------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_lets_the_handler_in_flight_finish_and_settles_it() {
    let Some(broker) = Broker::open("shutdown") else {
        return;
    };
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let started = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicUsize::new(0));
    {
        let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
        group.subscribe_fn("slow", move |_event| {
            let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        });
    }
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    started.notified().await;
    running.stop().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "finished before stopping"
    );

    // Settled: a new consumer of the group gets nothing more.
    let again = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&again, "count", 0);
    let running = Running::start(&again).await;
    orders
        .execute(ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .await
        .unwrap();
    until("the next message", || calls.load(Ordering::SeqCst) >= 1).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only the new message");
    broker.clean().await;
}

// ---- the relay --------------------------------------------------------------------------------

#[tokio::test]
async fn the_relay_carries_the_commands_trace_through_the_broker() {
    use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
    use eventsource_runtime::relay::Relay;

    let Some(broker) = Broker::open("relay") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start(&group).await;

    // The command only stores; the relay publishes.
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders.execute(sample_order("o-2", "bob")).await.unwrap();
    let relay = Relay::new(
        Arc::new(store),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(bus),
    );
    assert_eq!(relay.run_until_caught_up().await.unwrap(), 2);
    until("both handled", || calls.load(Ordering::SeqCst) == 2).await;
    running.stop().await;

    let spans = capture.spans();
    for command in spans.all("command.PlaceOrder") {
        let trace = command.span_context.trace_id();
        let in_trace: Vec<&str> = spans
            .0
            .iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .map(|s| s.name.as_ref())
            .collect();
        for name in [attr::SPAN_STORE_APPEND, PUBLISH, CONSUME, HANDLE] {
            assert!(in_trace.contains(&name), "{name} in {in_trace:?}");
        }
    }
    broker.clean().await;
}
