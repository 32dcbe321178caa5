//! The messaging attributes a tracing backend reads, against the real brokers (issue 48,
//! point 6): `messaging.consumer.group.name` is the name the broker knows the group by (the
//! Kafka `group.id`, the NATS durable consumer, the RabbitMQ queue), a retry included;
//! `messaging.operation.name` is on every publish and consume span, agreeing with
//! `messaging.operation.type`; a NATS consume span names the subject the message arrived
//! on; a Kafka port that refuses the connection is `ConnectionRefused` at once, while a
//! broker that takes the connection and answers slowly is still waited for.
//!
//! The brokers come from `EVENTSOURCE_AMQP_URL`, `EVENTSOURCE_NATS_URL` and
//! `EVENTSOURCE_KAFKA_BROKERS`; without one, its test prints `skipped: ... not set` and
//! passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1` / `EVENTSOURCE_REQUIRE_NATS=1` /
//! `EVENTSOURCE_REQUIRE_KAFKA=1`. Every test works on destinations of its own.

use crate::any_broker::{Group, delete_nats_streams, delete_rabbitmq};
use crate::domain;
use crate::envelopes::order_placed;
use crate::errors::chain;
use crate::servers::Server;
use eventsource_test_support::groups::Running;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domain::{Order, sample_order};
use eventsource_runtime::bus::{EventBus, HandlerError, UnavailableReason};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture};
use opentelemetry_sdk::trace::SpanData;

/// A handler that fails its first `failures` calls, and its count of calls.
fn flaky(
    failures: usize,
) -> (
    Arc<AtomicUsize>,
    impl eventsource_runtime::bus::EventHandler,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let handler = eventsource_runtime::bus::handler_fn("send-confirmation", move |_event| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(HandlerError::new(format!("failed (call {call})")))
            } else {
                Ok(())
            }
        }
    });
    (calls, handler)
}

/// Waits (up to `patience`) until `calls` reaches `n`.
async fn until_called(calls: &AtomicUsize, n: usize, patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    while calls.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler ran {} of {n} times",
            calls.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Places order o-1 through `bus`.
async fn place_order(bus: impl EventBus) {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert!(outcome.publish_error().is_none(), "{:?}", outcome.publish);
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(|value| value.as_str().into_owned())
}

/// What the spans got wrong, each point of the issue on its own line (all are checked, so
/// that one failure does not hide the next).
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// `span`'s `key` is `expected`.
    fn expect(&mut self, point: &str, span: &SpanData, key: &str, expected: &str) {
        let actual = text(span, key);
        if actual.as_deref() != Some(expected) {
            self.0.push(format!(
                "{point}: `{key}` on `{}` is {actual:?}, expected {expected:?}",
                span.name
            ));
        }
    }

    /// The publish span's operation is `send` named `publish_operation`, each consume
    /// span's `process` named `consume_operation`.
    fn operations(&mut self, spans: &CapturedSpans, publish_operation: &str, consume: &str) {
        let point = "messaging.operation.name";
        let publish = spans.get(attr::SPAN_BUS_PUBLISH);
        self.expect(point, publish, attr::MESSAGING_OPERATION_TYPE, "send");
        self.expect(
            point,
            publish,
            attr::MESSAGING_OPERATION_NAME,
            publish_operation,
        );
        for span in spans.all(attr::SPAN_BUS_CONSUME) {
            self.expect(point, span, attr::MESSAGING_OPERATION_TYPE, "process");
            self.expect(point, span, attr::MESSAGING_OPERATION_NAME, consume);
        }
    }

    fn assert_none(self, spans: &CapturedSpans) {
        assert!(
            self.0.is_empty(),
            "\n  {}\n\ncaptured:\n{}",
            self.0.join("\n  "),
            spans.tree_with_attributes()
        );
    }
}

/// The one consume span whose delivery mode is `mode`.
fn consume<'a>(spans: &'a CapturedSpans, mode: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .all(attr::SPAN_BUS_CONSUME)
        .into_iter()
        .filter(|s| text(s, attr::DELIVERY_MODE).as_deref() == Some(mode))
        .collect();
    assert_eq!(found.len(), 1, "one {mode} consume span: {}", spans.tree());
    found[0]
}

/// What each broker's test checks the spans of, on any broker: order o-1 placed through
/// `bus`, `group`'s handler failing its first call, so that the message is consumed live
/// then as a retry (the group's one retry delay); the spans once the retry was handled.
async fn delivered_then_retried<G: Group>(
    bus: impl EventBus,
    group: &G,
    patience: Duration,
) -> CapturedSpans {
    let capture = capture();
    let (calls, handler) = flaky(1);
    group.subscribe(handler);
    let running = Running::start(group).await;
    place_order(bus).await;
    until_called(&calls, 2, patience).await;
    running.stop().await;
    capture.spans()
}

/// The point about consumer groups.
const GROUP: &str = "messaging.consumer.group.name";
/// The point about the NATS destination.
const DESTINATION: &str = "messaging.destination.name";

#[tokio::test]
async fn rabbitmq_spans_name_the_groups_queue_and_their_operations() {
    use eventsource_runtime::rabbitmq::RabbitMqBus;

    let test = "messaging_conventions::rabbitmq";
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    let exchange = format!("es-test-conventions-{}", uuid::Uuid::now_v7().simple());
    let bus = RabbitMqBus::new(&url)
        .expect("an AMQP URL")
        .with_exchange(&exchange)
        .with_confirm_timeout(Duration::from_secs(5));
    let group = bus
        .consumer_group("confirmations")
        .retry_delays([Duration::from_millis(50)]);
    let spans = delivered_then_retried(bus, &group, Duration::from_secs(20)).await;
    let queue = format!("{exchange}.confirmations");
    assert_eq!(group.queue(), queue);
    let mut problems = Problems::default();
    // A retry comes back to the same queue: the same group, as the broker knows it.
    for mode in ["live", "redelivery"] {
        let span = consume(&spans, mode);
        problems.expect(GROUP, span, attr::MESSAGING_CONSUMER_GROUP_NAME, &queue);
    }
    problems.operations(&spans, "publish", "consume");
    problems.assert_none(&spans);

    delete_rabbitmq(
        &url,
        &exchange,
        &[
            &queue,
            &format!("{queue}.retry.50ms"),
            &format!("{queue}.dead"),
        ],
    )
    .await;
}

#[tokio::test]
async fn nats_spans_name_the_delivering_consumer_and_the_subject_the_message_arrived_on() {
    use eventsource_runtime::nats::NatsBus;

    let test = "messaging_conventions::nats";
    let Some(url) = Server::Nats.address(test) else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let stream = format!("ES_TEST_conventions_{id}");
    let prefix = format!("es-test-conventions-{id}");
    let bus = NatsBus::new(&url)
        .expect("a NATS URL")
        .with_stream(&stream)
        .with_subject_prefix(&prefix)
        .with_ack_timeout(Duration::from_secs(5));
    let group = bus
        .consumer_group("confirmations")
        .retry_delays([Duration::from_millis(50)]);
    let spans = delivered_then_retried(bus, &group, Duration::from_secs(20)).await;
    let durable = format!("{prefix}-confirmations");
    assert_eq!(group.consumer_name(), durable);
    let retry_subject = format!("{prefix}-retry.confirmations");
    assert_eq!(group.retry_subject(), retry_subject);
    let mut problems = Problems::default();
    let live = consume(&spans, "live");
    problems.expect(GROUP, live, attr::MESSAGING_CONSUMER_GROUP_NAME, &durable);
    let subject = format!("{prefix}.Order.OrderPlaced");
    problems.expect(
        DESTINATION,
        live,
        attr::MESSAGING_DESTINATION_NAME,
        &subject,
    );
    // The retry copy arrives on the group's retry subject, from its retry consumer.
    let retry = consume(&spans, "redelivery");
    let retry_durable = format!("{durable}-retry");
    problems.expect(
        GROUP,
        retry,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        &retry_durable,
    );
    problems.expect(
        DESTINATION,
        retry,
        attr::MESSAGING_DESTINATION_NAME,
        &retry_subject,
    );
    problems.operations(&spans, "publish", "process");
    problems.assert_none(&spans);

    delete_nats_streams(&url, &stream).await;
}

#[tokio::test]
async fn kafka_spans_name_the_group_id_of_the_consumer_that_read_the_record() {
    use eventsource_runtime::kafka::KafkaBus;

    let test = "messaging_conventions::kafka";
    let Some(brokers) = Server::Kafka.address(test) else {
        return;
    };
    let prefix = format!("es-conventions-{}", uuid::Uuid::now_v7().simple());
    let bus = KafkaBus::new(&brokers)
        .expect("a Kafka address")
        .with_topic_prefix(&prefix)
        .with_delivery_timeout(Duration::from_secs(10));
    let group = bus
        .consumer_group("confirmations")
        .bind("Order.*")
        .retry_delays([Duration::from_millis(100)]);
    // A group's first join takes seconds; its retry topic's group joins too.
    let spans = delivered_then_retried(bus, &group, Duration::from_secs(60)).await;
    let group_id = format!("{prefix}.confirmations");
    assert_eq!(group.group_id(), group_id);
    let mut problems = Problems::default();
    let live = consume(&spans, "live");
    problems.expect(GROUP, live, attr::MESSAGING_CONSUMER_GROUP_NAME, &group_id);
    // The retry topic is read by a group of its own, named as the topic.
    let retry_topic = format!("{group_id}.retry.100ms");
    let retry = consume(&spans, "redelivery");
    problems.expect(
        DESTINATION,
        retry,
        attr::MESSAGING_DESTINATION_NAME,
        &retry_topic,
    );
    problems.expect(
        GROUP,
        retry,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        &retry_topic,
    );
    problems.operations(&spans, "send", "process");
    problems.assert_none(&spans);
}

#[tokio::test]
async fn a_refused_kafka_port_is_connection_refused_at_once() {
    use eventsource_runtime::kafka::KafkaBus;

    // The default delivery timeout (10 s): a refusal must not wait for it.
    let bus = KafkaBus::new("kafka://127.0.0.1:1").unwrap();
    for attempt in ["declare", "declare again", "publish", "a group's declare"] {
        let started = Instant::now();
        let error = match attempt {
            "publish" => bus.publish(&[order_placed("o-1")]).await.unwrap_err(),
            "a group's declare" => bus.consumer_group("mailer").declare().await.unwrap_err(),
            _ => bus.declare(["Order"]).await.unwrap_err(),
        };
        let took = started.elapsed();
        assert_eq!(
            error.unavailable_reason(),
            Some(UnavailableReason::ConnectionRefused),
            "{attempt}: {} after {took:?}",
            chain(&error)
        );
        assert!(took < Duration::from_secs(5), "{attempt}: took {took:?}");
        let said = chain(&error);
        assert!(
            said.contains("connection refused at 127.0.0.1:1"),
            "{attempt}: {said}"
        );
        assert!(said.contains("Connection refused"), "{attempt}: {said}");
    }
}

#[tokio::test]
async fn a_kafka_broker_that_takes_the_connection_and_answers_slowly_is_waited_for() {
    use eventsource_runtime::kafka::KafkaBus;

    // Takes every connection and never answers (the thread ends with the test binary).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<std::net::TcpStream> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    let timeout = Duration::from_secs(2);
    let bus = KafkaBus::new(&format!("kafka://127.0.0.1:{port}"))
        .unwrap()
        .with_delivery_timeout(timeout);
    let started = Instant::now();
    let error = bus.declare(["Order"]).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        error.unavailable_reason(),
        Some(UnavailableReason::TimedOut),
        "{} after {took:?}",
        chain(&error)
    );
    assert!(took >= timeout, "waited for the broker: {took:?}");
}
