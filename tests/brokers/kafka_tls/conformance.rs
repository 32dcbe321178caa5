//! The broker conformance suite (`testing::conformance::broker`) over the TLS listener and
//! over the SASL_SSL listener: the same scenarios `tests/brokers/suites/kafka/` runs in plain, each
//! under a topic prefix of its own, with a fixture whose buses (and raw producer) connect
//! as [`KafkaTls::bus`] does.

use super::listeners::{KafkaTls, Listener};

use std::sync::LazyLock;
use std::time::Duration;

use eventsource_runtime::bus::wire;
use eventsource_runtime::event::Metadata;
use eventsource_runtime::kafka::rdkafka::ClientConfig;
use eventsource_runtime::kafka::rdkafka::message::{Header, OwnedHeaders};
use eventsource_runtime::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use eventsource_runtime::kafka::{ConsumerGroup, KafkaBus};
use eventsource_runtime::testing::MetricCapture;
use eventsource_runtime::testing::capture_metrics;
use eventsource_runtime::testing::conformance::broker::{self, BrokerFixture, RawMessage};

/// The bus metrics, captured for the whole binary (the only capture in it: the scenarios
/// tell theirs apart by an event type of their own).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// One scenario's part of a listener: a topic prefix of its own.
struct Fixture {
    kafka: KafkaTls,
    listener: Listener,
    test: String,
}

impl Fixture {
    fn open(test: &str, listener: Listener) -> Option<Self> {
        Some(Self {
            kafka: KafkaTls::open(test)?,
            listener,
            test: format!("{test}-{}", uuid::Uuid::now_v7().simple()),
        })
    }

    /// A producer of the fixture's own, over the same listener and settings as its buses.
    fn raw_producer(&self) -> FutureProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.kafka.server(self.listener))
            .set("ssl.ca.location", self.kafka.ca.display().to_string());
        match self.listener {
            Listener::Tls => config.set("security.protocol", "ssl"),
            Listener::SaslSsl => config
                .set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", &self.kafka.user)
                .set("sasl.password", &self.kafka.password),
        };
        config.create().expect("a producer")
    }
}

#[eventsource_runtime::async_trait]
impl BrokerFixture for Fixture {
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
        // The same prefix for every bus of a scenario (its groups read what it publishes).
        self.kafka.bus_with_prefix(self.listener, &self.test)
    }

    fn group(&self, bus: &KafkaBus, name: &str, retry_delays: &[Duration]) -> ConsumerGroup {
        bus.consumer_group(name)
            .bind("Order.*")
            .retry_delays(retry_delays.iter().copied())
    }

    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.group_id().to_owned()
    }

    /// Writes the record to the aggregate type's topic, as `tests/brokers/suites/kafka/main.rs` does.
    async fn send_raw(&self, bus: &KafkaBus, _group: &ConsumerGroup, message: RawMessage<'_>) {
        bus.declare([message.aggregate_type]).await.unwrap();
        let attempt = message.retry.map(|r| r.attempt.to_string());
        let handlers = message
            .retry
            .map(|r| serde_json::to_vec(r.handlers).unwrap());
        let mut headers = OwnedHeaders::new();
        let mut header = |key: &str, value: &[u8]| {
            headers = std::mem::take(&mut headers).insert(Header {
                key,
                value: Some(value),
            });
        };
        if let Some(traceparent) = message.traceparent {
            header(Metadata::TRACEPARENT, traceparent.as_bytes());
        }
        if let (Some(attempt), Some(handlers)) = (&attempt, &handlers) {
            header(wire::HEADER_ATTEMPT, attempt.as_bytes());
            header(wire::HEADER_HANDLERS, handlers);
        }
        let topic = bus.topic_of(message.aggregate_type);
        let record = FutureRecord::to(&topic)
            .key(message.aggregate_id)
            .payload(message.body)
            .headers(headers);
        self.raw_producer()
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
    }
}

/// Each scenario over each listener, a test of its own.
macro_rules! conformance {
    ($($test:ident => $scenario:path $(, $metrics:expr)?;)*) => {
        $(
            mod $test {
                use super::*;

                #[tokio::test]
                async fn over_tls() {
                    let test = concat!(stringify!($test), "-tls");
                    let Some(fixture) = Fixture::open(test, Listener::Tls) else {
                        return;
                    };
                    let _ = $scenario(&fixture $(, $metrics)?).await;
                }

                #[tokio::test]
                async fn over_sasl_ssl() {
                    let test = concat!(stringify!($test), "-sasl");
                    let Some(fixture) = Fixture::open(test, Listener::SaslSsl) else {
                        return;
                    };
                    let _ = $scenario(&fixture $(, $metrics)?).await;
                }
            }
        )*
    };
}

conformance! {
    one_trace => broker::trace::one_trace, &METRICS;
}

eventsource_runtime::broker_scenarios!(conformance, &METRICS);
