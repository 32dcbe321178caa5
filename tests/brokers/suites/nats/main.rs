//! The NATS JetStream bus against a real server: the broker conformance suite
//! (`testing::conformance::broker`: one trace from the publisher to the handlers, fan-out,
//! retries then dead letters, bad trace context, undecodable messages, graceful stop, the
//! relay's trace, v1 messages for a v2 consumer) and what only NATS does: subjects and
//! patterns, batch mode, a message not acknowledged in time, typed publish errors, recovery
//! bounded by the ack wait.
//!
//! The server comes from `EVENTSOURCE_NATS_URL` (e.g. `nats://127.0.0.1:4222`, JetStream
//! on). Without it each test prints `skipped: EVENTSOURCE_NATS_URL not set` and passes,
//! unless `EVENTSOURCE_REQUIRE_NATS=1` (CI sets it): then each one fails. Every test works
//! on streams and subjects of its own and deletes them when it passes.

use eventsource_test_support::domain;
use eventsource_test_support::envelopes::order_placed;
use eventsource_test_support::errors::chain;
use eventsource_test_support::groups::{Running, counting};
use eventsource_test_support::servers;

mod delivery;
mod publishing;
mod subjects;

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::{
    BusError, EventBus, HandlerError, Idempotent, InMemoryProcessedMessages, UnavailableReason,
    handler_fn, wire,
};
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
use eventsource_runtime::nats::async_nats::HeaderMap;
use eventsource_runtime::nats::async_nats::jetstream::{self, Context};
use eventsource_runtime::nats::{ConsumerGroup, NatsBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::conformance::broker::{self, BrokerFixture, RawMessage};
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics,
};
use futures_util::StreamExt as _;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::trace::SpanData;

// ---- helpers -------------------------------------------------------------------------------

/// The Nats server, or `None` (with a visible `skipped:` line).
fn server_url(test: &str) -> Option<String> {
    servers::Server::Nats.address(test)
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

    /// The durable consumer, not the name given to `consumer_group`.
    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.consumer_name().to_owned()
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

eventsource_runtime::broker_scenarios!(conformance, &METRICS);

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
