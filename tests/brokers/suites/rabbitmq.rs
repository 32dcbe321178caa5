//! The RabbitMQ bus against a real broker: the broker conformance suite
//! (`testing::conformance::broker`: one trace from the publisher to the handlers, fan-out,
//! retries then dead letters, bad trace context, undecodable messages, graceful stop, the
//! relay's trace, v1 messages for a v2 consumer) and what only RabbitMQ does: its span
//! attributes and metric destinations, typed publish errors (unroutable, unavailable,
//! refused credentials).
//!
//! The broker comes from `EVENTSOURCE_AMQP_URL` (e.g.
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Without it each test prints `skipped:
//! EVENTSOURCE_AMQP_URL not set` and passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1` (CI sets
//! it): then each one fails. Every test works on an exchange and queues of its own and
//! deletes them when it passes.

use eventsource_test_support::domain;
use eventsource_test_support::errors::chain;
use eventsource_test_support::groups::{Running, counting};
use eventsource_test_support::servers;

use servers::Server;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, UnavailableReason, wire};
use eventsource_runtime::event::Metadata;
use eventsource_runtime::prelude::*;
use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus, Unroutable};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::conformance::broker::{self, BrokerFixture, RawMessage};
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics,
};
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use opentelemetry::Value;
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;

// ---- helpers -------------------------------------------------------------------------------

/// The RabbitMq server, or `None` (with a visible `skipped:` line).
fn broker_url(test: &str) -> Option<String> {
    Server::RabbitMq.address(test)
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

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    eventsource_test_support::groups::until(what, Duration::from_secs(10), done).await;
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

// ---- the broker conformance suite ------------------------------------------------------------

#[eventsource_runtime::async_trait]
impl BrokerFixture for Broker {
    type Bus = RabbitMqBus;
    type Group = ConsumerGroup;

    fn system(&self) -> &'static str {
        "rabbitmq"
    }

    fn bus(&self) -> RabbitMqBus {
        Broker::bus(self)
    }

    fn group(&self, bus: &RabbitMqBus, name: &str, retry_delays: &[Duration]) -> ConsumerGroup {
        let delays: Vec<u64> = retry_delays
            .iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap())
            .collect();
        Broker::group(self, bus, name, &delays)
    }

    /// RabbitMQ has no consumer groups: the group's queue stands in.
    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.queue().to_owned()
    }

    /// Publishes straight to the group's queue, through the default exchange.
    async fn send_raw(&self, _bus: &RabbitMqBus, group: &ConsumerGroup, message: RawMessage<'_>) {
        let mut headers = FieldTable::default();
        if let Some(traceparent) = message.traceparent {
            headers.insert(
                Metadata::TRACEPARENT.into(),
                AMQPValue::LongString(LongString::from(traceparent)),
            );
        }
        if let Some(retry) = message.retry {
            headers.insert(
                wire::HEADER_ATTEMPT.into(),
                AMQPValue::LongLongInt(i64::from(retry.attempt)),
            );
            let handlers = retry
                .handlers
                .iter()
                .map(|h| AMQPValue::LongString(LongString::from(*h)))
                .collect::<Vec<_>>();
            headers.insert(
                wire::HEADER_HANDLERS.into(),
                AMQPValue::FieldArray(handlers.into()),
            );
        }
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        channel
            .basic_publish(
                "".into(),
                group.queue().into(),
                BasicPublishOptions::default(),
                message.body,
                BasicProperties::default().with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let _ = connection.close(200, "sent".into()).await;
    }
}

/// One test of the suite: a broker of its own, cleaned when the scenario passes.
macro_rules! conformance {
    ($($test:ident => $scenario:path $(, $metrics:expr)?;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(broker) = Broker::open(stringify!($test)) else {
                    return;
                };
                $scenario(&broker $(, $metrics)?).await;
                broker.clean().await;
            }
        )*
    };
}

eventsource_runtime::broker_scenarios!(conformance, &METRICS);

/// The suite's trace, and what only RabbitMQ's spans and metrics say: the exchange and
/// routing key, the queue, the delivery tag.
#[tokio::test]
async fn a_message_reaches_the_handlers_through_the_broker_as_one_trace() {
    let Some(broker) = Broker::open("one_trace") else {
        return;
    };
    let seen = broker::trace::one_trace(&broker, &METRICS).await;
    let (spans, group) = (&seen.spans, &seen.group);
    let publish = spans.get(PUBLISH);
    let consume = spans.get(CONSUME);
    let key = format!("Order.{}", seen.event.event_type);
    let sent = format!("{}:{key}", broker.exchange);
    let processed = format!("{sent}:{}", group.queue());
    assert_eq!(
        attribute(publish, attr::MESSAGING_DESTINATION_NAME),
        Some(&string(&sent))
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY),
        Some(&string(&key))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_DESTINATION_NAME),
        Some(&string(&processed))
    );
    assert!(matches!(
        attribute(consume, attr::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG),
        Some(Value::I64(_))
    ));
    let system = (attr::MESSAGING_SYSTEM, "rabbitmq");
    let event_type = (attr::METRIC_ATTR_EVENT_TYPE, &*seen.event.event_type);
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
