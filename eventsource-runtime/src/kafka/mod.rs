//! Kafka (feature `kafka`): everything the event bus does over Apache Kafka or any
//! Kafka-API broker, through [rdkafka](https://docs.rs/rdkafka) (librdkafka, built from its
//! bundled sources) on tokio.
//!
//! - [`KafkaBus`] publishes stored events ([`EventBus`]): an idempotent producer with
//!   `acks=all`, several records in flight, each publish span ended by its own delivery
//!   report; the record's key is the aggregate id, so a stream's events stay in one
//!   partition, in order; a refusal or no report in time is a typed [`BusError`];
//! - [`ConsumerGroup`] consumes them: a Kafka consumer group, a partition's records handled
//!   in order, offsets committed only once every handler succeeded (or the record was
//!   handed on to a retry or dead-letter topic); a failed record goes to a retry topic per
//!   delay, so it never blocks its partition, then to the dead letters;
//! - [`DeadLetters`] counts, lists, moves back and purges a group's dead letters.
//!
//! # Topics
//!
//! Created (idempotently, with the broker's default partitions and replication) by whichever
//! side needs them first:
//!
//! | name | what |
//! |---|---|
//! | `{prefix}.{aggregate_type}` (default prefix `eventsource`) | the events of one aggregate type ([`Topics::PerAggregateType`]; or one topic for all, [`Topics::One`]) |
//! | `{prefix}.{group}.retry.{delay}ms` | a failed record waits there until its delay has passed since it was written, then goes to the group's handlers that failed |
//! | `{prefix}.{group}.requeue` | dead letters moved back, handed over at once |
//! | `{prefix}.{group}.dead` | records that failed on every allowed delivery, or cannot be read, with the error |
//!
//! The group's id on the broker is `{prefix}.{group}`; each retry topic is read by a group
//! of its own name, so that a record waiting out its delay holds up no other.
//!
//! # Records
//!
//! The bus's [wire format](crate::bus::wire) as Kafka headers (text values): the W3C
//! context of the publish span, the message id (the event id, in
//! [`HEADER_MESSAGE_ID`](crate::bus::wire::HEADER_MESSAGE_ID): Kafka has none of its own),
//! the event's identity and, on retries and dead letters, the delivery state. The value is
//! the stored event as JSON; the key the aggregate id.
//!
//! # Redeliveries
//!
//! Kafka hands a record over again, without saying so, when its consumer stopped before
//! committing past it. Before a record goes to the handlers its group commits the record's
//! own offset with the mark `eventsource:started`, and past it once it is settled: a
//! consumer that finds the mark on the record it resumes at knows that record was started
//! and not finished (its consumer was killed), and treats it as a redelivery; every record
//! after it, never started, is a first delivery. Within one process, a record at or below
//! an offset already handled (a rebalance handed the partition back) is a redelivery too,
//! and so is every record from a retry topic.
//!
//! # Telemetry
//!
//! The bus's spans are the contract's (`docs/telemetry.md`) with `messaging.system` =
//! `kafka`, `server.address`/`server.port` (the first bootstrap server),
//! `messaging.destination.name` = the topic, `messaging.kafka.message.key`, and on consume
//! spans `messaging.destination.partition.id`, `messaging.kafka.offset` and
//! `messaging.consumer.group.name`. A first delivery's consume span continues the producer's
//! trace; a retry or a redelivery is a new root linked to the producer's span; a batch
//! ([`ConsumerGroup::batch`]) is one new root with a link per record.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventsource_runtime::bus::{EventBus, HandlerError};
//! use eventsource_runtime::kafka::KafkaBus;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = KafkaBus::new("kafka://127.0.0.1:9092")?.with_topic_prefix("shop");
//!
//! // A consumer group: retries after 1 s and 10 s, then the dead letters.
//! let mailer = bus
//!     .consumer_group("mailer")
//!     .bind("Order.OrderPlaced")
//!     .retry_delays([Duration::from_secs(1), Duration::from_secs(10)]);
//! mailer.subscribe_fn("send-confirmation", |event| async move {
//!     println!("confirming {}", event.aggregate_id());
//!     Ok::<(), HandlerError>(())
//! });
//! mailer.declare().await?; // its topics exist from now on
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let consuming = tokio::spawn(async move { mailer.run(async { let _ = stopped.await; }).await });
//!
//! // ... `CommandService::with_bus(bus.clone())`, or a relay, publishes ...
//! let _ = stop.send(());
//! consuming.await??;
//! # Ok(()) }
//! ```

mod codec;
mod consumer;
mod dead_letters;
mod error;
mod topology;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::time::Instant;
use uuid::Uuid;

use crate::bus::instrument;
use crate::bus::wire::DeliveryState;
use crate::bus::{
    BusError, BusMessage, BusSpanNames, BusTelemetry, EventBus, PublishFailure, PublishReport,
};
use crate::event::EventEnvelope;
use crate::telemetry::attributes::MESSAGING_KAFKA_MESSAGE_KEY;
use error::{unavailable, undelivered};

pub use consumer::{ConsumerGroup, DEFAULT_RETRY_DELAYS};
pub use dead_letters::DeadLetters;
/// The Kafka client this module is built on, for settings and tools of your own (and so
/// that they match its version).
pub use rdkafka;
pub use topology::Topics;

/// `messaging.system` of the Kafka bus.
pub const SYSTEM: &str = "kafka";

/// The prefix of every topic and group name unless told otherwise.
pub const DEFAULT_TOPIC_PREFIX: &str = "eventsource";

/// How long a record may take to be delivered (librdkafka's `message.timeout.ms`, retries
/// included) by default.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// An [`EventBus`] over a Kafka cluster; see the [module](self) for the topics, the records
/// and the telemetry.
///
/// The producer connects in the background on first use and reconnects by itself; a
/// publish while the brokers are down fails with [`BusError::Unavailable`] once
/// [`with_delivery_timeout`](Self::with_delivery_timeout) has passed. Cheap to clone; clones
/// share the producer.
#[derive(Clone)]
pub struct KafkaBus {
    shared: Arc<Shared>,
}

struct Shared {
    bootstrap: String,
    prefix: String,
    topics: Topics,
    partitions: i32,
    delivery_timeout: Duration,
    /// librdkafka settings given by the user (security, tuning), applied last.
    settings: Vec<(String, String)>,
    telemetry: BusTelemetry,
    producer: Mutex<ProducerSlot>,
    /// Topics known to exist.
    created: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap", &self.shared.bootstrap)
            .field("prefix", &self.shared.prefix)
            .field("topics", &self.shared.topics)
            .field("delivery_timeout", &self.shared.delivery_timeout)
            .finish_non_exhaustive()
    }
}

/// The bus's producer, if made yet, and how many were made before it.
#[derive(Default)]
struct ProducerSlot {
    generation: u64,
    current: Option<Arc<Client>>,
}

/// A producer handed out by [`KafkaBus::producer`]: the client and which one it was, so
/// that a failure forgets that producer only (not one made since by another publish).
#[derive(Clone)]
struct Producer {
    generation: u64,
    client: Arc<Client>,
}

impl std::ops::Deref for Producer {
    type Target = FutureProducer;

    fn deref(&self) -> &FutureProducer {
        self.client
            .0
            .as_ref()
            .expect("a client holds its producer until dropped")
    }
}

/// The one handle on a librdkafka producer. Dropping a producer blocks (it purges, flushes
/// for up to half a second and waits for librdkafka's threads): the last clone's drop
/// hands that to a thread of its own rather than holding up an async task's thread.
struct Client(Option<FutureProducer>);

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(producer) = self.0.take() {
            // No thread to be had: the failed spawn dropped it here, the blocking way.
            let _ = std::thread::Builder::new()
                .name("eventsource-kafka-drop".to_owned())
                .spawn(move || drop(producer));
        }
    }
}

/// The bootstrap servers of `url`: `kafka://host:port[,host:port...]` or the list alone.
fn bootstrap(url: &str) -> Result<(String, (String, u16)), BusError> {
    let list = url
        .strip_prefix("kafka://")
        .unwrap_or(url)
        .trim_end_matches('/');
    let invalid = |why: String| {
        BusError::unavailable(crate::bus::BrokerUnreachable::new(
            crate::bus::UnavailableReason::InvalidUrl,
            "the URL given",
            Some(why.into()),
        ))
    };
    if list.contains('@') {
        return Err(invalid(
            "a Kafka URL takes no credentials: give them as librdkafka settings \
             (`with_setting(\"sasl.username\", ..)`)"
                .to_owned(),
        ));
    }
    let first = list.split(',').next().unwrap_or_default();
    let (host, port) = match first.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok()),
        None => (first, Some(9092)),
    };
    match port {
        Some(port) if !host.is_empty() => Ok((list.to_owned(), (host.to_owned(), port))),
        _ => Err(invalid(format!(
            "not a Kafka address: `{list}` (want `kafka://host:port`)"
        ))),
    }
}

impl KafkaBus {
    /// A bus on the cluster at `url` (`kafka://host:9092`, several servers separated by
    /// commas; `host:9092` alone works too), publishing one topic per aggregate type under
    /// [`DEFAULT_TOPIC_PREFIX`]. Nothing is connected yet.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when `url` is not a list of `host:port`.
    pub fn new(url: &str) -> Result<Self, BusError> {
        let (bootstrap, server) = bootstrap(url)?;
        let mut telemetry = BusTelemetry::new(SYSTEM);
        telemetry.server = Some(server);
        Ok(Self {
            shared: Arc::new(Shared {
                bootstrap,
                prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
                topics: Topics::default(),
                partitions: -1,
                delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
                settings: Vec::new(),
                telemetry,
                producer: Mutex::default(),
                created: Mutex::default(),
            }),
        })
    }

    /// Builder: the prefix of the topics and group ids (default [`DEFAULT_TOPIC_PREFIX`]).
    #[must_use]
    pub fn with_topic_prefix(self, prefix: impl Into<String>) -> Self {
        self.configure(|shared| shared.prefix = prefix.into())
    }

    /// Builder: which topics events are published to (default
    /// [`Topics::PerAggregateType`]).
    #[must_use]
    pub fn with_topics(self, topics: Topics) -> Self {
        self.configure(|shared| shared.topics = topics)
    }

    /// Builder: the number of partitions of the topics this bus creates (default: the
    /// broker's `num.partitions`).
    #[must_use]
    pub fn with_partitions(self, partitions: u16) -> Self {
        self.configure(|shared| shared.partitions = i32::from(partitions.max(1)))
    }

    /// Builder: how long a record may take to be delivered, retries included, before the
    /// publish fails with [`BusError::Unavailable`] (default [`DEFAULT_DELIVERY_TIMEOUT`]);
    /// a delivery report that does not come a second after that is
    /// [`BusError::Unconfirmed`].
    #[must_use]
    pub fn with_delivery_timeout(self, timeout: Duration) -> Self {
        self.configure(|shared| shared.delivery_timeout = timeout.max(Duration::from_millis(1)))
    }

    /// Builder: a librdkafka setting for every client of this bus (producer, consumers,
    /// admin), applied after the bus's own: `security.protocol`, `ssl.*`, `sasl.*`,
    /// `session.timeout.ms`, ... Settings the bus relies on (`enable.idempotence`, `acks`,
    /// `enable.auto.commit`) can be overridden too, at the cost of its guarantees.
    #[must_use]
    pub fn with_setting(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configure(|shared| shared.settings.push((key.into(), value.into())))
    }

    /// Builder: switches the bus's spans (publish, and its groups' consume and handle) on
    /// or off (on by default). The bus metrics follow the process switch only.
    #[must_use]
    pub fn enable_tracing(self, enabled: bool) -> Self {
        self.configure(|shared| shared.telemetry.enabled = enabled)
    }

    /// Builder: overrides the span names.
    #[must_use]
    pub fn with_span_names(self, names: BusSpanNames) -> Self {
        self.configure(|shared| shared.telemetry.names = names)
    }

    fn configure(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared).unwrap_or_else(|shared| Shared {
            bootstrap: shared.bootstrap.clone(),
            prefix: shared.prefix.clone(),
            topics: shared.topics.clone(),
            partitions: shared.partitions,
            delivery_timeout: shared.delivery_timeout,
            settings: shared.settings.clone(),
            telemetry: shared.telemetry.clone(),
            producer: Mutex::default(),
            created: Mutex::default(),
        });
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The prefix of the bus's topics and group ids.
    #[must_use]
    pub fn topic_prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The topic events of `aggregate_type` are published to.
    #[must_use]
    pub fn topic_of(&self, aggregate_type: &str) -> String {
        self.shared
            .topics
            .topic(&self.shared.prefix, aggregate_type)
    }

    /// The bus's telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> &BusTelemetry {
        &self.shared.telemetry
    }

    /// Creates the topics of these aggregate types now (idempotent), so that consumer
    /// groups can subscribe before anything was published.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached or refuses.
    pub async fn declare<I, S>(&self, aggregate_types: I) -> Result<(), BusError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let topics: Vec<String> = aggregate_types
            .into_iter()
            .map(|t| self.topic_of(t.as_ref()))
            .collect();
        self.ensure_topics(topics).await
    }

    /// A consumer group named `name` on this bus: its own retry and dead-letter topics,
    /// reading every event until [`bind`](ConsumerGroup::bind) says otherwise.
    #[must_use]
    pub fn consumer_group(&self, name: &str) -> ConsumerGroup {
        ConsumerGroup::new(self.clone(), name)
    }

    /// The first bootstrap server's `host:port`, for errors.
    fn server(&self) -> String {
        match &self.shared.telemetry.server {
            Some((host, port)) => format!("{host}:{port}"),
            None => self.shared.bootstrap.clone(),
        }
    }

    /// The settings every client of this bus starts from.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.shared.bootstrap)
            .set("client.id", "eventsource")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        for (key, value) in &self.shared.settings {
            config.set(key, value);
        }
        config
    }

    /// The producer, created if it was not (librdkafka connects in the background).
    fn producer(&self) -> Result<Producer, BusError> {
        let mut slot = self
            .shared
            .producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.current.as_ref() {
            return Ok(Producer {
                generation: slot.generation,
                client: Arc::clone(client),
            });
        }
        let timeout = self.shared.delivery_timeout.as_millis().to_string();
        let mut config = ClientConfig::new();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", &timeout)
            .set("linger.ms", "1");
        for (key, value) in self.client_config().config_map() {
            config.set(key, value);
        }
        let created: FutureProducer = config.create().map_err(unavailable)?;
        let client = Arc::new(Client(Some(created)));
        slot.generation += 1;
        slot.current = Some(Arc::clone(&client));
        Ok(Producer {
            generation: slot.generation,
            client,
        })
    }

    /// Forgets `producer` if it is still the bus's, so that the next publish creates
    /// another (with a producer id of its own); the last handle's drop purges what it still
    /// held.
    ///
    /// After a record timed out, librdkafka's idempotent producer bumps its epoch by itself
    /// (legal in Kafka, KIP-360) and goes on with that epoch. Some Kafka-API brokers never
    /// issued it and fail on it (tansu 0.6 panics, and its storage stops answering anything
    /// until it is restarted): a new producer asks the broker for a fresh id and epoch
    /// instead. So a producer is forgotten after any delivery that failed or was not
    /// confirmed in time, never reused.
    fn reset(&self, producer: &Producer) {
        let forgotten = {
            let mut slot = self
                .shared
                .producer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.generation == producer.generation {
                slot.current.take()
            } else {
                None
            }
        };
        drop(forgotten);
    }

    /// An admin client for creating topics.
    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, BusError> {
        self.client_config().create().map_err(unavailable)
    }

    /// Creates those of `topics` not known to exist yet.
    async fn ensure_topics(&self, topics: Vec<String>) -> Result<(), BusError> {
        let missing: Vec<String> = {
            let created = self
                .shared
                .created
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut missing: Vec<String> = topics
                .into_iter()
                .filter(|t| !created.contains(t))
                .collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        let admin = self.admin()?;
        let timeout = self.shared.delivery_timeout;
        let server = self.server();
        topology::create(&admin, &missing, self.shared.partitions, timeout, &server).await?;
        self.shared
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(missing);
        Ok(())
    }

    /// Sends `message` to `topic` with `state`; the delivery report is awaited by
    /// [`delivered`].
    fn send(
        &self,
        producer: &Producer,
        topic: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<DeliveryFuture, BusError> {
        let body = codec::body(message)?;
        let record = FutureRecord::to(topic)
            .key(message.event.aggregate_id())
            .payload(&body)
            .headers(codec::headers(message, state));
        producer
            .send_result(record)
            .map_err(|(error, _)| unavailable(error))
    }

    /// Waits until `deadline` for the delivery report of a record `producer` sent; a
    /// producer whose record was not delivered (or not confirmed) is [reset](Self::reset).
    async fn delivered(
        &self,
        producer: &Producer,
        delivery: DeliveryFuture,
        message_id: Uuid,
        deadline: Instant,
    ) -> Result<(), BusError> {
        let outcome = match tokio::time::timeout_at(deadline, delivery).await {
            Err(_) => Err(BusError::Unconfirmed {
                message_id,
                waited: self.shared.delivery_timeout,
            }),
            Ok(Err(_canceled)) => Err(BusError::unavailable("the producer was closed")),
            Ok(Ok(Err((error, _)))) => Err(undelivered(error, message_id)),
            Ok(Ok(Ok(_))) => Ok(()),
        };
        if let Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. }) = &outcome {
            self.reset(producer);
        }
        outcome
    }

    /// When a report is overdue: the delivery timeout and a second.
    fn deadline(&self) -> Instant {
        Instant::now() + self.shared.delivery_timeout + Duration::from_secs(1)
    }

    /// Sends a copy of `message` with `state` to `topic` and waits for its delivery.
    async fn forward(
        &self,
        topic: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        let producer = self.producer()?;
        let delivery = self.send(&producer, topic, message, state)?;
        self.delivered(&producer, delivery, message.message_id, self.deadline())
            .await
    }
}

/// Whose child a message's publish span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanParent {
    /// The current span (a command publishing what it just stored).
    Current,
    /// The trace context stored with the event (a relay).
    Stored,
}

/// A record sent and not yet reported delivered.
struct InFlight {
    message_id: Uuid,
    publishing: instrument::Publishing,
    delivery: DeliveryFuture,
    deadline: Instant,
}

impl KafkaBus {
    /// Sends every event, in order, without waiting between them, then waits for the
    /// delivery reports; each publish span lasts until its record's report. Stops sending
    /// at the first failure, which names the records delivered before the first one that
    /// failed (later ones may have been delivered too).
    async fn publish_all(
        &self,
        events: &[EventEnvelope],
        parent: SpanParent,
    ) -> Result<PublishReport, PublishFailure> {
        let fail = |error| PublishFailure::new(PublishReport::default(), error);
        let producer = self.producer().map_err(fail)?;
        let topics = events.iter().map(|e| self.topic_of(e.aggregate_type()));
        self.ensure_topics(topics.collect()).await.map_err(fail)?;
        let telemetry = &self.shared.telemetry;
        let mut in_flight = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in events {
            let sending = async {
                let topic = self.topic_of(event.aggregate_type());
                let mut message = BusMessage::new(topic.as_str(), event.clone())
                    .with_attribute(MESSAGING_KAFKA_MESSAGE_KEY, event.aggregate_id());
                let publishing = instrument::start_publish(telemetry, &mut message);
                let state = DeliveryState::first();
                let sent = publishing
                    .run(async { self.send(&producer, &topic, &message, &state) })
                    .await;
                (message.message_id, publishing, sent)
            };
            let (message_id, publishing, sent) = match parent {
                SpanParent::Current => sending.await,
                SpanParent::Stored => instrument::in_stored_context(event, sending).await,
            };
            match sent {
                Ok(delivery) => in_flight.push(InFlight {
                    message_id,
                    publishing,
                    delivery,
                    deadline: self.deadline(),
                }),
                Err(error) => {
                    let outcome = Err::<(), _>(error);
                    publishing.end(&outcome);
                    failure = outcome.err();
                    break;
                }
            }
        }
        let mut ids = Vec::with_capacity(in_flight.len());
        for sent in in_flight {
            let outcome = self
                .delivered(&producer, sent.delivery, sent.message_id, sent.deadline)
                .await;
            sent.publishing.end(&outcome);
            match outcome {
                Ok(()) if failure.is_none() => ids.push(sent.message_id),
                Ok(()) => {}
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            None => Ok(PublishReport::new(ids)),
            Some(error) => {
                if matches!(error, BusError::Unavailable(_)) {
                    self.reset(&producer);
                }
                Err(PublishFailure::new(PublishReport::new(ids), error))
            }
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    /// Publishes each event as one record, in order, several in flight at once; each
    /// publish span is a child of the current span and lasts until the record's delivery
    /// report. Fails with the first record that failed (the records before it are
    /// delivered, later ones may be).
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let published = self.publish_all(events, SpanParent::Current).await;
        published.map_err(|failure| failure.error)
    }

    /// As [`publish`](Self::publish), each publish span a child of the context stored with
    /// its event.
    async fn publish_stored(
        &self,
        events: &[EventEnvelope],
    ) -> Result<PublishReport, PublishFailure> {
        self.publish_all(events, SpanParent::Stored).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_come_from_a_url_or_a_list() {
        let (list, server) = bootstrap("kafka://k1:9093,k2:9093").unwrap();
        assert_eq!(list, "k1:9093,k2:9093");
        assert_eq!(server, ("k1".to_owned(), 9093));
        assert_eq!(
            bootstrap("localhost").unwrap().1,
            ("localhost".to_owned(), 9092)
        );
        assert!(bootstrap("kafka://:x").is_err());
        let refused = bootstrap("kafka://user:secret@k1:9092").unwrap_err();
        assert!(!refused.to_string().contains("secret"));
        assert!(!format!("{refused:?}").contains("secret"));
    }
}
