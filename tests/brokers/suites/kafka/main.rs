//! The Kafka bus against a real Kafka-API broker: the broker conformance suite
//! (`testing::conformance::broker`: one trace from the publisher to the handlers, fan-out,
//! retries through retry topics then dead letters, bad trace context, undecodable records,
//! unknown handlers, graceful stop, the relay's trace, v1 messages for a v2 consumer) and
//! what only Kafka does: its span attributes, a poison record that does not block its
//! partition, a batch with a link per record, a consumer that died mid-record, a stop while
//! a retry waits.
//!
//! The broker comes from `EVENTSOURCE_KAFKA_BROKERS` (e.g. `127.0.0.1:9092`). Without it
//! each test prints `skipped: EVENTSOURCE_KAFKA_BROKERS not set` and passes, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1` (CI sets it): then each one fails. Every test works under a
//! topic prefix of its own.

use eventsource_test_support::domain;
use eventsource_test_support::envelopes::order_placed;
use eventsource_test_support::groups::{Running, counting};
use eventsource_test_support::servers;

mod delivery;
mod groups;
mod publishing;
mod spans;

use servers::Server;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError, wire};
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
use eventsource_runtime::kafka::{ConsumerGroup, KafkaBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::conformance::broker::{self, BrokerFixture, RawMessage};
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics,
};
use opentelemetry::Value;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

// ---- helpers -------------------------------------------------------------------------------

/// The Kafka server, or `None` (with a visible `skipped:` line).
fn brokers(test: &str) -> Option<String> {
    Server::Kafka.address(test)
}

/// One test's broker: a topic prefix of its own.
struct Broker {
    url: String,
    prefix: String,
}

impl Broker {
    fn open(test: &str) -> Option<Self> {
        let url = brokers(test)?;
        let prefix = format!("es-{test}-{}", uuid::Uuid::now_v7().simple());
        Some(Self { url, prefix })
    }

    fn bus(&self) -> KafkaBus {
        KafkaBus::new(&self.url)
            .expect("a Kafka address")
            .with_topic_prefix(&self.prefix)
            .with_delivery_timeout(Duration::from_secs(10))
    }

    /// A group with short retry delays, bound to orders.
    fn group(&self, bus: &KafkaBus, name: &str, delays: &[u64]) -> ConsumerGroup {
        bus.consumer_group(name)
            .bind("Order.*")
            .retry_delays(delays.iter().map(|ms| Duration::from_millis(*ms)))
    }
}

/// Waits (up to 60 s: a group's first join takes seconds) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    eventsource_test_support::groups::until(what, Duration::from_secs(60), done).await;
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn named<'a>(spans: &'a CapturedSpans, name: &str) -> Vec<&'a SpanData> {
    spans.all(name)
}

fn linked_to(span: &SpanData, target: &SpanData) -> bool {
    span.links
        .iter()
        .any(|l| l.span_context.span_id() == target.span_context.span_id())
}

/// Writes a raw record with `headers` and `body` to the orders topic.
async fn raw(bus: &KafkaBus, key: &str, headers: &[(&str, &[u8])], body: &[u8]) {
    use eventsource_runtime::kafka::rdkafka::message::{Header, OwnedHeaders};
    use eventsource_runtime::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
    let brokers = std::env::var("EVENTSOURCE_KAFKA_BROKERS").unwrap();
    let producer: FutureProducer = eventsource_runtime::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let headers = headers
        .iter()
        .fold(OwnedHeaders::new(), |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(*value),
            })
        });
    let topic = bus.topic_of("Order");
    let record = FutureRecord::to(&topic)
        .key(key)
        .payload(body)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("delivered");
}

/// The bus metrics, captured for the whole binary (tests tell theirs apart by destination).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

const PUBLISH: &str = attr::SPAN_BUS_PUBLISH;
const CONSUME: &str = attr::SPAN_BUS_CONSUME;
const HANDLE: &str = attr::SPAN_BUS_HANDLE;

// ---- the broker conformance suite ------------------------------------------------------------

#[eventsource_runtime::async_trait]
impl BrokerFixture for Broker {
    type Bus = KafkaBus;
    type Group = ConsumerGroup;

    fn system(&self) -> &'static str {
        "kafka"
    }

    /// A group's first join takes seconds.
    fn patience(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn bus(&self) -> KafkaBus {
        Broker::bus(self)
    }

    fn group(&self, bus: &KafkaBus, name: &str, retry_delays: &[Duration]) -> ConsumerGroup {
        let delays: Vec<u64> = retry_delays
            .iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap())
            .collect();
        Broker::group(self, bus, name, &delays)
    }

    /// The group as the broker knows it (`group.id`), not the name given to
    /// `consumer_group`.
    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.group_id().to_owned()
    }

    /// Writes the record to the aggregate type's topic (a retry too: the group takes a
    /// retry's headers wherever it reads them).
    async fn send_raw(&self, bus: &KafkaBus, _group: &ConsumerGroup, message: RawMessage<'_>) {
        bus.declare([message.aggregate_type]).await.unwrap();
        let attempt = message.retry.map(|r| r.attempt.to_string());
        let handlers = message
            .retry
            .map(|r| serde_json::to_vec(r.handlers).unwrap());
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(traceparent) = message.traceparent {
            headers.push((Metadata::TRACEPARENT, traceparent.as_bytes()));
        }
        if let (Some(attempt), Some(handlers)) = (&attempt, &handlers) {
            headers.push((wire::HEADER_ATTEMPT, attempt.as_bytes()));
            headers.push((wire::HEADER_HANDLERS, handlers));
        }
        raw(bus, message.aggregate_id, &headers, message.body).await;
    }
}

/// One test of the suite: a topic prefix of its own.
macro_rules! conformance {
    ($($test:ident => $scenario:path $(, $metrics:expr)?;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(broker) = Broker::open(stringify!($test)) else {
                    return;
                };
                $scenario(&broker $(, $metrics)?).await;
            }
        )*
    };
}

eventsource_runtime::broker_scenarios!(conformance, &METRICS);

/// The suite's trace, and what only Kafka's spans and metrics say: the topic, the record's
/// key, partition and offset, the group id.
#[tokio::test]
async fn a_message_reaches_the_handlers_through_kafka_as_one_trace() {
    let Some(broker) = Broker::open("one_trace") else {
        return;
    };
    let seen = broker::trace::one_trace(&broker, &METRICS).await;
    let (spans, group) = (&seen.spans, &seen.group);
    let publish = spans.get(PUBLISH);
    let consume = spans.get(CONSUME);
    let topic = broker.bus().topic_of("Order");
    assert_eq!(topic, format!("{}.Order", broker.prefix));
    // The first bootstrap server's port (9092 unless the broker was named elsewhere).
    let port: i64 = broker
        .url
        .trim_start_matches("kafka://")
        .split(',')
        .next()
        .and_then(|server| server.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(9092);
    for span in [publish, consume] {
        assert_eq!(
            attribute(span, attr::MESSAGING_DESTINATION_NAME),
            Some(&string(&topic))
        );
        assert_eq!(
            attribute(span, attr::MESSAGING_KAFKA_MESSAGE_KEY),
            Some(&string("o-1")),
            "the key is the aggregate id"
        );
        assert_eq!(attribute(span, attr::SERVER_PORT), Some(&Value::I64(port)));
    }
    assert_eq!(group.group_id(), format!("{}.mailer", broker.prefix));
    assert!(matches!(
        attribute(consume, attr::MESSAGING_DESTINATION_PARTITION_ID),
        Some(Value::String(_))
    ));
    assert_eq!(
        attribute(consume, attr::MESSAGING_KAFKA_OFFSET),
        Some(&Value::I64(0))
    );
    let labels = [
        (attr::MESSAGING_DESTINATION_NAME, topic.as_str()),
        (attr::MESSAGING_SYSTEM, "kafka"),
        (attr::METRIC_ATTR_EVENT_TYPE, &*seen.event.event_type),
    ];
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &labels),
        1
    );
    assert_eq!(
        METRICS.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &labels),
        1
    );
}
