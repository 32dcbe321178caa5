//! The Kafka bus against a real Kafka-API broker: the broker conformance suite
//! (`testing::conformance::broker`: one trace from the publisher to the handlers, fan-out,
//! retries through retry topics then dead letters, bad trace context, undecodable records,
//! unknown handlers, graceful stop, the relay's trace) and what only Kafka does: its span
//! attributes, a poison record that does not block its partition, a batch with a link per
//! record, a consumer that died mid-record, a stop while a retry waits.
//!
//! The broker comes from `EVENTSOURCE_KAFKA_BROKERS` (e.g. `127.0.0.1:9092`). Without it
//! each test prints `skipped: EVENTSOURCE_KAFKA_BROKERS not set` and passes, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1` (CI sets it): then each one fails. Every test works under a
//! topic prefix of its own.

#[path = "../../../examples/domain/order.rs"]
mod domain;
use eventsource_test_support::servers;

use servers::Server;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::bus::{
    BusError, DeadLetterEntry, Dispatcher, EventBus, HandlerError, wire,
};
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
use eventsource_runtime::kafka::{ConsumerGroup, KafkaBus};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::conformance::broker::{
    self, BoxFuture, BrokerFixture, RawMessage,
};
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, attribute, capture, capture_metrics,
};
use opentelemetry::Value;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::oneshot;

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

/// A running consumer group, stopped (gracefully) by [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    async fn start(group: &ConsumerGroup) -> Self {
        group.declare().await.expect("the group's topics");
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

    /// Ends the consumer the hard way: no commit, no goodbye to the group.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits (up to 60 s: a group's first join takes seconds) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6000 {
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

fn linked_to(span: &SpanData, target: &SpanData) -> bool {
    span.links
        .iter()
        .any(|l| l.span_context.span_id() == target.span_context.span_id())
}

fn stored_event(aggregate_id: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Order", aggregate_id),
        version: 1,
        position: 1,
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({}).into(),
        metadata: Metadata::new(),
    }
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

    fn dispatcher<'g>(&self, group: &'g ConsumerGroup) -> &'g Dispatcher {
        group.dispatcher()
    }

    /// The group as the broker knows it (`group.id`), not the name given to
    /// `consumer_group`.
    fn consumer_group_name(&self, group: &ConsumerGroup) -> String {
        group.group_id().to_owned()
    }

    async fn declare(&self, group: &ConsumerGroup) -> Result<(), BusError> {
        group.declare().await
    }

    fn run(group: ConsumerGroup, stop: BoxFuture<()>) -> BoxFuture<Result<(), BusError>> {
        Box::pin(async move { group.run(stop).await })
    }

    async fn dead_letter_count(&self, group: &ConsumerGroup) -> Result<u64, BusError> {
        group.dead_letters().count().await
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
        group.dead_letters().purge().await
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

// ---- failures ------------------------------------------------------------------------------

#[tokio::test]
async fn a_poison_record_does_not_block_its_partition() {
    let Some(broker) = Broker::open("poison") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let group = broker.group(&bus, "mailer", &[30_000]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("picky", move |event: EventEnvelope| {
        let seen = Arc::clone(&seen);
        async move {
            if event.aggregate_id() == "poison" {
                return Err(HandlerError::new("cannot handle this one"));
            }
            seen.lock().unwrap().push(event.aggregate_id().to_owned());
            Ok(())
        }
    });
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    for id in ["poison", "a", "b"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    // The records after it are handled long before its 30 s retry is due.
    until("the records after the poison one", || {
        handled.lock().unwrap().len() == 2
    })
    .await;
    running.stop().await;
    assert_eq!(*handled.lock().unwrap(), ["a", "b"]);
}

// ---- batches, crashes, stops -----------------------------------------------------------------

#[tokio::test]
async fn a_batch_is_one_consume_span_with_a_link_per_record() {
    let Some(broker) = Broker::open("batch") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    // Three orders published before the group starts: ready together.
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for id in ["o-1", "o-2", "o-3"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    let group = broker.group(&bus, "reporting", &[50]).batch(10);
    let calls = counting(&group, "report", 0);
    let running = Running::start(&group).await;
    until("three records handled", || {
        calls.load(Ordering::SeqCst) == 3
    })
    .await;
    running.stop().await;

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    let consumes = named(&spans, CONSUME);
    assert_eq!(consumes.len(), 1, "one batch: {}", spans.tree());
    let batch = consumes[0];
    assert_eq!(batch.parent_span_id, SpanId::INVALID, "a new root");
    assert_eq!(
        attribute(batch, attr::MESSAGING_BATCH_MESSAGE_COUNT),
        Some(&Value::I64(3))
    );
    assert_eq!(batch.links.len(), 3);
    for publish in publishes {
        assert!(linked_to(batch, publish), "a link per record");
    }
    assert_eq!(named(&spans, HANDLE).len(), 3);
}

#[tokio::test]
async fn a_record_its_consumer_died_on_comes_back_as_a_redelivery_and_the_rest_as_first_deliveries()
{
    let Some(broker) = Broker::open("crash") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders.execute(sample_order("o-2", "bob")).await.unwrap();

    // The first consumer hangs in its handler on the first record, and is killed there.
    let stuck = broker.group(&bus, "mailer", &[50]);
    let started = Arc::new(AtomicUsize::new(0));
    let entered = Arc::clone(&started);
    stuck.subscribe_fn("send-confirmation", move |_| {
        entered.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<(), HandlerError>(())
        }
    });
    let first = Running::start(&stuck).await;
    until("the first record started", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    // The `started` mark is committed on the group's cadence (up to `commit_interval`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !started_mark_kept(&bus, &stuck).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record in hand was never marked as started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().await;
    let killed_at = std::time::SystemTime::now();

    // The next consumer of the group (the first one's session must time out first).
    let next = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&next, "send-confirmation", 0);
    let second = Running::start(&next).await;
    until("both records handled", || calls.load(Ordering::SeqCst) == 2).await;
    second.stop().await;

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    // The killed consumer's consume span ended when its task was dropped; the next
    // consumer's are those that ended after the kill.
    let completed: Vec<_> = named(&spans, CONSUME)
        .into_iter()
        .filter(|c| c.end_time > killed_at)
        .collect();
    assert_eq!(completed.len(), 2, "nothing lost: {}", spans.tree());
    let redelivered: Vec<_> = completed
        .iter()
        .filter(|c| c.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(
        redelivered.len(),
        1,
        "the record in the killed handler: {}",
        spans.tree()
    );
    assert_eq!(
        attribute(redelivered[0], attr::DELIVERY_MODE),
        Some(&string(attr::DELIVERY_REDELIVERY))
    );
    assert!(publishes.iter().any(|p| linked_to(redelivered[0], p)));
    let first_deliveries = completed
        .iter()
        .filter(|c| {
            publishes
                .iter()
                .any(|p| c.parent_span_id == p.span_context.span_id())
        })
        .count();
    assert_eq!(
        first_deliveries, 1,
        "the record nobody started: a first delivery"
    );
}

/// Whether the broker returns the `started` mark the killed consumer committed.
async fn started_mark_kept(bus: &KafkaBus, group: &ConsumerGroup) -> bool {
    use eventsource_runtime::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
    let brokers = std::env::var("EVENTSOURCE_KAFKA_BROKERS").unwrap();
    let consumer: BaseConsumer = eventsource_runtime::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", group.group_id())
        .create()
        .unwrap();
    let topic = bus.topic_of("Order");
    tokio::task::spawn_blocking(move || {
        let mut list = eventsource_runtime::kafka::rdkafka::TopicPartitionList::new();
        list.add_partition(&topic, 0);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        let entry = committed.find_partition(&topic, 0).unwrap();
        entry.metadata() == "eventsource:started"
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_record_in_hand_and_leaves_the_rest_as_first_deliveries() {
    let Some(broker) = Broker::open("graceful") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for id in ["o-1", "o-2", "o-3"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    let slow = broker.group(&bus, "mailer", &[50]);
    let calls = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&calls);
    let starting = Arc::clone(&entered);
    slow.subscribe_fn("send-confirmation", move |_| {
        let done = Arc::clone(&done);
        starting.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    let first = Running::start(&slow).await;
    until("the first record in hand", || {
        entered.load(Ordering::SeqCst) == 1
    })
    .await;
    first.stop().await;
    let finished = calls.load(Ordering::SeqCst);
    assert!(finished >= 1, "the record in hand finished");

    let next = broker.group(&bus, "mailer", &[50]);
    let rest = counting(&next, "send-confirmation", 0);
    let second = Running::start(&next).await;
    until("the rest handled", || {
        finished + rest.load(Ordering::SeqCst) == 3
    })
    .await;
    second.stop().await;
    let spans = capture.spans();
    for consume in named(&spans, CONSUME) {
        assert_eq!(
            attribute(consume, attr::DELIVERY_MODE),
            Some(&string(attr::DELIVERY_LIVE)),
            "nothing failed, nothing reads as a retry: {}",
            spans.tree()
        );
    }
}

#[tokio::test]
async fn a_graceful_stop_while_a_retry_waits_out_its_delay_keeps_the_retry() {
    let Some(broker) = Broker::open("stop-retry") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let first = broker.group(&bus, "mailer", &[6000]);
    let calls = counting(&first, "flaky", 1);
    let running = Running::start(&first).await;
    bus.publish(&[stored_event("o-1")]).await.unwrap();
    until("the first delivery failed", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    // The copy is in the retry topic: its consumer takes it and waits out the delay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not due yet");

    let next = broker.group(&bus, "mailer", &[6000]);
    let again = counting(&next, "flaky", 0);
    let running = Running::start(&next).await;
    until("the retry handled after the restart", || {
        again.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
}

// ---- publishing ------------------------------------------------------------------------------

#[tokio::test]
async fn a_broker_that_does_not_answer_is_a_typed_error() {
    let bus = KafkaBus::new("kafka://127.0.0.1:1")
        .unwrap()
        .with_delivery_timeout(Duration::from_secs(2));
    let event = stored_event("o-1");
    let started = std::time::Instant::now();
    let error = bus.publish(std::slice::from_ref(&event)).await.unwrap_err();
    assert!(
        matches!(
            error,
            BusError::Unavailable(_) | BusError::Unconfirmed { .. }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    // Nothing listens there: refused (at once, `tests/brokers/messaging_conventions.rs`), not timed
    // out.
    let said = bus.declare(["Order"]).await.unwrap_err();
    assert_eq!(
        said.unavailable_reason(),
        Some(eventsource_runtime::bus::UnavailableReason::ConnectionRefused),
        "{said:?}"
    );
    assert!(
        std::error::Error::source(&said)
            .is_some_and(|source| source.to_string().contains("127.0.0.1:1"))
    );
    let invalid = KafkaBus::new("kafka://user:s3cret@host:9092").unwrap_err();
    assert_eq!(
        invalid.unavailable_reason(),
        Some(eventsource_runtime::bus::UnavailableReason::InvalidUrl)
    );
    assert!(!format!("{invalid:?}").contains("s3cret"));
}

// ---- the contract ------------------------------------------------------------------------------

#[tokio::test]
async fn the_kafka_spans_carry_the_documented_keys_and_no_other() {
    let Some(broker) = Broker::open("contract") else {
        return;
    };
    let contract = include_str!("../../../docs/telemetry.md");
    // Every key the contract names, in backticks.
    let documented: std::collections::BTreeSet<&str> = contract
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.contains('.') && !word.contains(' '))
        .collect();
    let capture = capture();
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
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
        attr::MESSAGING_KAFKA_MESSAGE_KEY,
        attr::MESSAGING_KAFKA_OFFSET,
        attr::MESSAGING_DESTINATION_PARTITION_ID,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        attr::DELIVERY_ATTEMPT,
    ] {
        assert!(documented.contains(key), "`{key}` documented");
        assert!(seen.contains(key), "`{key}` seen on the Kafka spans");
    }
}

/// A record on the group's own topic whose event belongs to another aggregate type (a
/// producer of another kind wrote it there) is skipped, counted with `reason=misrouted`
/// and logged, as NATS skips a message on another event's subject; the record after it
/// is handled. An event the group does not bind is counted with `reason=not_bound`.
#[tokio::test]
async fn a_record_of_another_aggregate_type_on_the_groups_topic_is_skipped_and_counted() {
    let Some(broker) = Broker::open("misrouted") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let group = bus
        .consumer_group("mailer")
        .bind("Order.OrderPlaced")
        .retry_delays([Duration::from_millis(50)]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("send-confirmation", move |event| {
        seen.lock().unwrap().push(event.event_id);
        async { Ok::<(), HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    bus.declare(["Order"]).await.unwrap();
    let mut misrouted = stored_event("c-1");
    misrouted.stream = StreamId::new("Customer", "c-1");
    misrouted.event_type = "CustomerRegistered".into();
    raw(&bus, "c-1", &[], &wire::encode(&misrouted).unwrap()).await;
    let mut shipped = stored_event("o-1");
    shipped.event_type = "OrderShipped".into();
    raw(&bus, "o-1", &[], &wire::encode(&shipped).unwrap()).await;
    let placed = stored_event("o-1");
    raw(&bus, "o-1", &[], &wire::encode(&placed).unwrap()).await;
    until("the record after them handled", || {
        !handled.lock().unwrap().is_empty()
    })
    .await;
    running.stop().await;
    assert_eq!(
        *handled.lock().unwrap(),
        [placed.event_id],
        "only the bound one"
    );
    let topic = bus.topic_of("Order");
    let skipped = |reason: &'static str| {
        METRICS.total(
            attr::METRIC_BUS_MESSAGES_SKIPPED,
            &[
                (attr::MESSAGING_SYSTEM, "kafka"),
                (attr::MESSAGING_DESTINATION_NAME, topic.as_str()),
                (attr::METRIC_ATTR_SKIP_REASON, reason),
            ],
        )
    };
    assert_eq!(skipped("misrouted"), 1);
    assert_eq!(skipped("not_bound"), 1);
}

/// Three members of one group, started together, reading every aggregate type's topic
/// (`bind("#")`: a busy one and a quiet one, six partitions each), each get a share of the
/// busy topic: every member handles a part of the stream, and every record is handled
/// (counted by event id), whichever group protocol they join with
/// (`EVENTSOURCE_KAFKA_GROUP_PROTOCOL`). An assignor that balances all partitions together
/// (`cooperative-sticky`, the broker's `uniform`) gave one member the quiet topic only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_of_a_group_each_get_a_share_of_every_topic() {
    let Some(broker) = Broker::open("share") else {
        return;
    };
    const ORDERS: usize = 300;
    let bus = broker.bus().with_partitions(6);
    bus.declare(["Account", "Order"]).await.unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for n in 0..ORDERS {
        orders
            .execute(sample_order(&format!("o-{n}"), "ada"))
            .await
            .unwrap();
    }
    let handled: Vec<Arc<std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>>> =
        (0..3).map(|_| Arc::default()).collect();
    let mut running = Vec::new();
    for seen in &handled {
        let group = bus
            .consumer_group("sharing")
            .bind("#")
            .retry_delays([Duration::from_millis(50)]);
        let seen = Arc::clone(seen);
        group.subscribe_fn("record", move |event| {
            seen.lock().unwrap().insert(event.event_id);
            // Slow enough that the three have joined before the stream is handled.
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<(), HandlerError>(())
            }
        });
        running.push(Running::start(&group).await);
    }
    let all = || {
        handled
            .iter()
            .flat_map(|seen| seen.lock().unwrap().iter().copied().collect::<Vec<_>>())
            .collect::<std::collections::HashSet<_>>()
    };
    until("every record handled", || all().len() == ORDERS).await;
    for member in running {
        member.stop().await;
    }
    let each: Vec<usize> = handled
        .iter()
        .map(|seen| seen.lock().unwrap().len())
        .collect();
    assert!(
        each.iter().all(|n| *n > 0),
        "each member handled a part: {each:?}"
    );
}
