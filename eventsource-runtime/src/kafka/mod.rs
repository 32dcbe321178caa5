//! Kafka (feature `kafka`): everything the event bus does over Apache Kafka or any
//! Kafka-API broker, through [rdkafka](https://docs.rs/rdkafka) (librdkafka, built from its
//! bundled sources) on tokio.
//!
//! - [`KafkaBus`] publishes stored events ([`EventBus`](crate::bus::EventBus)): an idempotent producer with
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
//! The bus's spans are the contract's (`docs/telemetry.md`) with `messaging.system` = `kafka`,
//! `server.address`/`server.port` (the first bootstrap server), `messaging.operation.name` =
//! `send` or `process`, `messaging.destination.name` = the topic,
//! `messaging.kafka.message.key`, and on consume spans `messaging.destination.partition.id`,
//! `messaging.kafka.offset` and `messaging.consumer.group.name` = the `group.id` of the
//! consumer that read the record ([`ConsumerGroup::group_id`], or a retry or requeue topic's
//! own group). A first delivery's consume span continues the producer's trace; a retry or a
//! redelivery is a new root linked to the producer's span; a batch ([`ConsumerGroup::batch`])
//! is one new root with a link per record.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventsource_runtime::bus::{EventBus, HandlerError, Subscribe};
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
mod context;
mod dead_letters;
mod doubts;
mod error;
mod group_context;
mod host_name;
mod joining;
mod lag;
mod membership;
mod offsets;
mod producer;
mod protocol;
mod publish;
mod session;
mod settle;
mod topology;
mod waiting;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;

use crate::broker::settings::configured;
use crate::bus::{BusError, BusTelemetry, WithBusTelemetry};
use producer::ProducerSlot;

pub use consumer::{
    ConsumerGroup, DEFAULT_COMMIT_INTERVAL, DEFAULT_RETRY_DELAYS, DEFAULT_SESSION_TIMEOUT,
};
pub use dead_letters::DeadLetters;
pub use protocol::{GROUP_PROTOCOL_VARIABLE, GroupProtocol};
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

/// An [`EventBus`](crate::bus::EventBus) over a Kafka cluster; see the [module](self) for the topics, the records
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
    /// Why librdkafka last could not connect, as its clients reported it.
    last_error: context::LastError,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap", &self.shared.bootstrap)
            .field("prefix", &self.shared.prefix)
            .field("topics", &self.shared.topics)
            .field("delivery_timeout", &self.shared.delivery_timeout)
            .field("settings", &Settings(&self.shared.settings))
            .finish_non_exhaustive()
    }
}

/// The user's librdkafka settings, for `Debug`: each one's last value (the one librdkafka
/// is given), in the order they were first given; the value of a setting whose name says
/// `password` or `secret` shown as `***`.
struct Settings<'a>(&'a [(String, String)]);

impl std::fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown: Vec<(&str, &str)> = Vec::with_capacity(self.0.len());
        for (key, value) in self.0 {
            let value = if secret(key) {
                crate::telemetry::secrets::HIDDEN
            } else {
                value.as_str()
            };
            match shown.iter_mut().find(|(known, _)| known == key) {
                Some(given) => given.1 = value,
                None => shown.push((key, value)),
            }
        }
        f.debug_map().entries(shown).finish()
    }
}

/// Whether the value of the librdkafka setting `key` is a secret (`sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, ...).
fn secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret")
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

impl WithBusTelemetry for KafkaBus {
    fn configure_telemetry(self, change: impl FnOnce(&mut BusTelemetry)) -> Self {
        self.configure(|shared| change(&mut shared.telemetry))
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
                last_error: context::LastError::default(),
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
    /// `enable.auto.commit`) can be overridden too, at the cost of its guarantees. The value
    /// of a setting whose name says `password` or `secret` is hidden from every log line
    /// (see [`telemetry::secrets`](crate::telemetry::secrets)), and shown as `***` by the
    /// bus's `Debug`, which lists the settings given.
    #[must_use]
    pub fn with_setting(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        // `sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`: out of every
        // log line `telemetry::init()` writes.
        if secret(&key) {
            crate::telemetry::secrets::hide(&value);
        }
        self.configure(|shared| shared.settings.push((key, value)))
    }

    /// Builder: TLS to the brokers, through librdkafka's OpenSSL (the `kafka-ssl` feature):
    /// `security.protocol=ssl`, the CA file as `ssl.ca.location` (else OpenSSL's default
    /// roots), the client certificate as `ssl.certificate.location` and
    /// `ssl.key.location`. Host names are verified (librdkafka's default
    /// `ssl.endpoint.identification.algorithm=https`). For SASL over TLS, follow it with
    /// `with_setting("security.protocol", "sasl_ssl")` and the `sasl.*` settings; any other
    /// `ssl.*` setting goes through [`with_setting`](Self::with_setting) too. Without
    /// `kafka-ssl`, connecting fails with
    /// [`UnavailableReason::Tls`](crate::bus::UnavailableReason::Tls) naming the feature.
    ///
    /// A handshake every broker fails, or credentials every broker refuses, end the
    /// operation that connects (`declare`, a group's `declare`, the dead-letter tools, a
    /// publish to a topic not created yet) at once rather than at the delivery timeout:
    /// [`UnavailableReason::Tls`](crate::bus::UnavailableReason::Tls) with a
    /// [`TlsFailure`](crate::broker::TlsFailure) (`UntrustedCertificate`, or
    /// `HostNameMismatch`, told apart by one more handshake without the host-name check
    /// and without SASL), or
    /// [`UnavailableReason::AuthenticationFailed`](crate::bus::UnavailableReason::AuthenticationFailed),
    /// naming the first bootstrap server's `host:port`.
    ///
    /// ```no_run
    /// use eventsource_runtime::broker::BrokerTls;
    /// use eventsource_runtime::kafka::KafkaBus;
    ///
    /// # fn run() -> Result<(), eventsource_runtime::bus::BusError> {
    /// let bus = KafkaBus::new("kafka://kafka.internal:9093")?.with_tls(
    ///     BrokerTls::new()
    ///         .with_ca_file("/etc/kafka-client/ca.pem")
    ///         .with_client_certificate("/etc/kafka-client/app.pem", "/etc/kafka-client/app-key.pem"),
    /// );
    /// # drop(bus); Ok(()) }
    /// ```
    #[must_use]
    pub fn with_tls(self, tls: crate::broker::BrokerTls) -> Self {
        let path = |p: &std::path::Path| p.display().to_string();
        let mut bus = self.with_setting("security.protocol", "ssl");
        if let Some(ca) = tls.ca_file() {
            bus = bus.with_setting("ssl.ca.location", path(ca));
        }
        if let Some((certificate, key)) = tls.client_certificate() {
            bus = bus
                .with_setting("ssl.certificate.location", path(certificate))
                .with_setting("ssl.key.location", path(key));
        }
        bus
    }

    /// The bus with its settings changed by `change` (copied first if a clone holds them).
    fn configure(self, change: impl FnOnce(&mut Shared)) -> Self {
        let fresh = |shared: &Shared| Shared {
            bootstrap: shared.bootstrap.clone(),
            prefix: shared.prefix.clone(),
            topics: shared.topics.clone(),
            partitions: shared.partitions,
            delivery_timeout: shared.delivery_timeout,
            settings: shared.settings.clone(),
            telemetry: shared.telemetry.clone(),
            producer: Mutex::default(),
            created: Mutex::default(),
            last_error: context::LastError::default(),
        };
        Self {
            shared: configured(self.shared, fresh, change),
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
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        self.apply_settings(&mut config);
        config
    }

    /// Sets the bootstrap servers, the client id and the user's settings on `config`, over
    /// what it holds: for a client with settings of its own (the producer, the consumers).
    /// Not copied from another `ClientConfig`'s `config_map`, which shows the values of
    /// `sasl.password` and the other secrets as `[sanitized for safety]`: a client given
    /// those signs in with that text (the broker refuses it).
    fn apply_settings(&self, config: &mut ClientConfig) {
        config
            .set("bootstrap.servers", &self.shared.bootstrap)
            .set("client.id", "eventsource");
        for (key, value) in &self.shared.settings {
            config.set(key, value);
        }
    }

    /// A client that could not be created: a TLS setting in a build without OpenSSL is named
    /// as such ([`UnavailableReason::Tls`](crate::bus::UnavailableReason::Tls)).
    pub(crate) fn creation_failed(&self, error: rdkafka::error::KafkaError) -> BusError {
        error::creation_failed(error, &self.server())
    }

    /// An admin client for creating topics, recording librdkafka's connection errors.
    fn admin(&self) -> Result<AdminClient<context::LastError>, BusError> {
        self.client_config()
            .create_with_context(self.shared.last_error.clone())
            .map_err(|e| self.creation_failed(e))
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
        // The producer, made now if it was not: its polling thread hears why librdkafka
        // cannot connect, which the admin client keeps to itself. Waited for from before
        // it is made: a new producer's brokers all turning it away (refusing the
        // connection, the TLS handshake or the credentials) end the wait.
        let why = &self.shared.last_error;
        let server = self.server();
        let turned_away = why.turned_away(&server);
        let producer = self.producer()?;
        let admin = self.admin()?;
        let timeout = self.shared.delivery_timeout;
        let partitions = self.shared.partitions;
        let created = topology::create(
            &admin,
            &missing,
            partitions,
            timeout,
            &server,
            (why, turned_away),
        )
        .await;
        if let Err(error) = created {
            use crate::bus::UnavailableReason as Reason;
            if let Some(Reason::ConnectionRefused | Reason::Tls | Reason::AuthenticationFailed) =
                error.unavailable_reason()
            {
                // Forgotten, so that the next try makes another producer, whose reports
                // end that wait at once too (this one's brokers are down already: it
                // reports nothing new).
                self.reset(&producer);
            }
            return Err(self.told_apart(error).await);
        }
        self.shared
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(missing);
        Ok(())
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

    #[test]
    fn every_client_is_given_the_secrets_themselves_and_debug_hides_them() {
        let bus = KafkaBus::new("kafka://k1:9095")
            .unwrap()
            .with_setting("security.protocol", "ssl")
            .with_setting("security.protocol", "sasl_ssl")
            .with_setting("sasl.username", "orders")
            .with_setting("sasl.password", "s3cret-4711");
        // What the producer and the consumers start from, over settings of their own.
        let mut config = ClientConfig::new();
        config.set("acks", "all");
        bus.apply_settings(&mut config);
        assert_eq!(config.get("sasl.password"), Some("s3cret-4711"));
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9095"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(
            bus.client_config().get("sasl.password"),
            Some("s3cret-4711")
        );
        let shown = format!("{bus:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains(r#"settings: {"security.protocol": "sasl_ssl", "sasl.username": "orders", "sasl.password": "***"}"#),
            "{shown}"
        );
    }
}
