//! RabbitMQ (feature `rabbitmq`): everything the event bus does over a RabbitMQ broker,
//! through [lapin](https://docs.rs/lapin) on tokio.
//!
//! - [`RabbitMqBus`] publishes stored events ([`EventBus`](crate::bus::EventBus)): publisher confirms on,
//!   persistent messages, message id = the event id, routing key
//!   `{aggregate_type}.{event_type}`; a nack, a return (no queue bound) or no confirm within
//!   the timeout is a typed [`BusError`], never a silent drop;
//! - [`ConsumerGroup`] consumes them: one durable queue per group, bound by patterns, its
//!   handlers run through a [`Dispatcher`](crate::bus::Dispatcher), an ack only after every
//!   handler succeeded, a failure retried after a delay, then dead-lettered;
//! - [`DeadLetters`] lists, counts, moves back and purges a group's dead letters, from Rust
//!   (no management plugin needed).
//!
//! # Topology
//!
//! Declared idempotently by whichever side starts first (declare the groups from the
//! producer too, so that nothing published before a consumer first started is unroutable):
//!
//! | name | what |
//! |---|---|
//! | `{exchange}` (default `eventsource`) | durable topic exchange |
//! | `{exchange}.{group}` | the group's durable queue, bound with its patterns (default `#`) |
//! | `{exchange}.{group}.retry.{delay}ms` | a message waits its delay there, then returns to the group's queue (TTL and dead-lettering through the default exchange) |
//! | `{exchange}.{group}.dead` | messages that failed on every allowed delivery, with the last error in `x-eventsource-error` |
//!
//! # Messages
//!
//! The bus's [wire format](crate::bus::wire), in AMQP terms: the body is the stored event
//! as JSON, the message id the event id. The headers carry the W3C context of the publish
//! span (`traceparent`, `tracestate`, `baggage`), the event's type, schema version,
//! aggregate type and id, version and position (`eventsource-*`), and the delivery state of a
//! retried message (`x-eventsource-attempt`, `x-eventsource-handlers`: those that failed).
//!
//! # Telemetry
//!
//! The bus's spans are the contract's (`docs/telemetry.md`) with `messaging.system` =
//! `rabbitmq`, `server.address`/`server.port`, `messaging.operation.name` = `publish` or
//! `consume`, `messaging.destination.name` = `{exchange}:{routing_key}` when sending and
//! `{exchange}:{routing_key}:{queue}` when processing,
//! `messaging.rabbitmq.destination.routing_key`, and on consume spans
//! `messaging.rabbitmq.message.delivery_tag` and `messaging.consumer.group.name` = the group's
//! queue ([`ConsumerGroup::queue`]). A first delivery's consume span continues the producer's
//! trace; a retry, or a message the broker redelivered (its consumer died), is a new root
//! linked to the producer's span.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventsource_runtime::bus::{EventBus, HandlerError, Subscribe};
//! use eventsource_runtime::rabbitmq::RabbitMqBus;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = RabbitMqBus::new("amqp://guest:guest@127.0.0.1:5672/%2f")?.with_exchange("shop");
//!
//! // A consumer group: its own queue, retries after 1 s and 10 s, then the dead letters.
//! let mailer = bus
//!     .consumer_group("mailer")
//!     .bind("Order.OrderPlaced")
//!     .retry_delays([Duration::from_secs(1), Duration::from_secs(10)]);
//! mailer.subscribe_fn("send-confirmation", |event| async move {
//!     println!("confirming {}", event.aggregate_id());
//!     Ok::<(), HandlerError>(())
//! });
//! mailer.declare().await?; // so that what is published now is kept for it
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let consuming = tokio::spawn(async move { mailer.run(async { let _ = stopped.await; }).await });
//!
//! // ... `CommandService::with_bus(bus.clone())`, or a relay, publishes ...
//! let _ = stop.send(());
//! consuming.await??;
//! # Ok(()) }
//! ```

mod codec;
mod confirm;
mod consumer;
mod dead_letters;
mod error;
mod lag;
mod tls;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, PublisherConfirm};
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::BrokerTls;
use crate::broker::publish::{InFlight, Outcomes, SpanParent, event_bus_by_publish_all};
use crate::broker::settings::configured;
use crate::bus::instrument;
use crate::bus::wire::DeliveryState;
use crate::bus::{
    BrokerUnreachable, BusError, BusMessage, BusTelemetry, PublishFailure, PublishReport,
    WithBusTelemetry,
};
use crate::event::EventEnvelope;
use crate::telemetry::attributes::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY;
use crate::telemetry::otel::log::log_warn;
use confirm::{Confirmed, Returns, confirmed};
use error::unavailable;

#[cfg(feature = "fuzzing")]
pub(crate) use codec::read_headers;
pub use consumer::{ConsumerGroup, DEFAULT_DRAIN_ON_STOP, DEFAULT_PREFETCH, DEFAULT_RETRY_DELAYS};
pub use dead_letters::DeadLetters;

/// `messaging.system` of the RabbitMQ bus.
pub const SYSTEM: &str = "rabbitmq";

/// The exchange a bus publishes to unless told otherwise.
pub const DEFAULT_EXCHANGE: &str = "eventsource";

/// What a publish does with a message that no queue is bound for (the broker returns it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unroutable {
    /// A typed error, [`BusError::Rejected`] (the default): nobody would have received the
    /// message. A [relay](crate::relay) retries it until a consumer group is bound for it,
    /// and publishes nothing after it meanwhile.
    #[default]
    Fail,
    /// Published to nobody: the publish succeeds and a warning names the message and the
    /// exchange. Fits a relay publishing event types that no service consumes yet: the
    /// store keeps every event, so a group added later can be fed from it.
    Skip,
}

/// How long a publish waits for the broker's confirm by default.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// An [`EventBus`](crate::bus::EventBus) over a RabbitMQ broker; see the [module](self) for the topology, the
/// messages and the telemetry.
///
/// It connects on first use (or [`declare`](Self::declare)) and again after the connection
/// was lost: a publish while the broker is down fails with [`BusError::Unavailable`], the
/// next one tries again. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RabbitMqBus {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    exchange: String,
    confirm_timeout: Duration,
    unroutable: Unroutable,
    /// The TLS settings of an `amqps://` URL (the system's roots when `None`).
    tls: Option<BrokerTls>,
    telemetry: BusTelemetry,
    /// The publishing connection and its channel (confirms on), once connected.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// Returned messages whose return came with another publish's confirm.
    returns: Returns,
}

impl std::fmt::Debug for RabbitMqBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqBus")
            .field("server", &self.shared.telemetry.server)
            .field("exchange", &self.shared.exchange)
            .field("confirm_timeout", &self.shared.confirm_timeout)
            .finish_non_exhaustive()
    }
}

impl WithBusTelemetry for RabbitMqBus {
    fn configure_telemetry(self, change: impl FnOnce(&mut BusTelemetry)) -> Self {
        self.configure(|shared| change(&mut shared.telemetry))
    }
}

impl RabbitMqBus {
    /// A bus on the broker at `url` (`amqp://user:password@host:5672/vhost`, the vhost
    /// URL-encoded: `%2f` for `/`; `amqps://...:5671/...` over TLS, see
    /// [`with_tls`](Self::with_tls)), publishing to [`DEFAULT_EXCHANGE`]. Nothing is
    /// connected yet.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when `url` is not an AMQP URL.
    pub fn new(url: &str) -> Result<Self, BusError> {
        // Out of every log line `telemetry::init()` writes, whatever the client logs.
        crate::telemetry::secrets::hide_url_password(url);
        let uri: AMQPUri = url.parse().map_err(|e: String| {
            BusError::unavailable(BrokerUnreachable::new(
                crate::bus::UnavailableReason::InvalidUrl,
                "the URL given",
                Some(e.into()),
            ))
        })?;
        let mut telemetry = BusTelemetry::new(SYSTEM);
        telemetry.server = Some((uri.authority.host.clone(), uri.authority.port));
        Ok(Self {
            shared: Arc::new(Shared {
                url: url.to_owned(),
                exchange: DEFAULT_EXCHANGE.to_owned(),
                confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
                unroutable: Unroutable::Fail,
                tls: None,
                telemetry,
                publisher: Mutex::new(None),
                returns: Returns::default(),
            }),
        })
    }

    /// Builder: the exchange to publish to (and the prefix of the groups' queues).
    #[must_use]
    pub fn with_exchange(self, exchange: impl Into<String>) -> Self {
        self.configure(|shared| shared.exchange = exchange.into())
    }

    /// Builder: how long a publish waits for the broker's confirm before failing with
    /// [`BusError::Unconfirmed`] (default [`DEFAULT_CONFIRM_TIMEOUT`]).
    #[must_use]
    pub fn with_confirm_timeout(self, timeout: Duration) -> Self {
        self.configure(|shared| shared.confirm_timeout = timeout)
    }

    /// Builder: what a publish does with a message no queue is bound for (default
    /// [`Unroutable::Fail`]).
    #[must_use]
    pub fn on_unroutable(self, unroutable: Unroutable) -> Self {
        self.configure(|shared| shared.unroutable = unroutable)
    }

    /// Builder: the TLS settings of an `amqps://` URL: a CA to trust instead of the system's
    /// roots, a client certificate for a broker that wants one (RabbitMQ's
    /// `ssl_options.fail_if_no_peer_cert`). Without it, an `amqps://` URL connects with the
    /// system's roots and no client certificate (Amazon MQ, CloudAMQP); with it, an `amqp://`
    /// URL fails to connect ([`UnavailableReason::Tls`](crate::bus::UnavailableReason::Tls))
    /// rather than connect in plain. Needs the `tls` feature (on by default).
    ///
    /// ```no_run
    /// use eventsource_runtime::broker::BrokerTls;
    /// use eventsource_runtime::rabbitmq::RabbitMqBus;
    ///
    /// # fn run() -> Result<(), eventsource_runtime::bus::BusError> {
    /// let bus = RabbitMqBus::new("amqps://app:secret@rabbit.internal:5671/%2f")?.with_tls(
    ///     BrokerTls::new()
    ///         .with_ca_file("/etc/rabbitmq-client/ca.pem")
    ///         .with_client_certificate("/etc/rabbitmq-client/app.pem", "/etc/rabbitmq-client/app-key.pem"),
    /// );
    /// # drop(bus); Ok(()) }
    /// ```
    #[must_use]
    pub fn with_tls(self, tls: BrokerTls) -> Self {
        self.configure(|shared| shared.tls = Some(tls))
    }

    /// The bus with its settings changed by `change` (copied first if a clone holds them).
    fn configure(self, change: impl FnOnce(&mut Shared)) -> Self {
        let fresh = |shared: &Shared| Shared {
            url: shared.url.clone(),
            exchange: shared.exchange.clone(),
            confirm_timeout: shared.confirm_timeout,
            unroutable: shared.unroutable,
            tls: shared.tls.clone(),
            telemetry: shared.telemetry.clone(),
            publisher: Mutex::new(None),
            returns: Returns::default(),
        };
        Self {
            shared: configured(self.shared, fresh, change),
        }
    }

    /// The exchange messages are published to.
    #[must_use]
    pub fn exchange(&self) -> &str {
        &self.shared.exchange
    }

    /// The bus's telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> &BusTelemetry {
        &self.shared.telemetry
    }

    /// Connects now and declares the exchange (idempotent).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached or refuses.
    pub async fn declare(&self) -> Result<(), BusError> {
        self.channel().await.map(drop)
    }

    /// A consumer group named `name` on this bus: its own queue (bound to every event
    /// until [`bind`](ConsumerGroup::bind) says otherwise), retries and dead letters.
    #[must_use]
    pub fn consumer_group(&self, name: &str) -> ConsumerGroup {
        ConsumerGroup::new(self.clone(), name)
    }

    /// A new connection to the broker.
    async fn connect(&self) -> Result<Connection, BusError> {
        tls::connect(&self.shared.url, self.shared.tls.as_ref(), &self.server()).await
    }

    /// The broker's `host:port`, for errors (never the URL: it holds the password).
    fn server(&self) -> String {
        match &self.shared.telemetry.server {
            Some((host, port)) => format!("{host}:{port}"),
            None => "the broker".to_owned(),
        }
    }

    /// The publishing channel, connected (and the exchange declared) if it was not.
    async fn channel(&self) -> Result<Channel, BusError> {
        let mut publisher = self.shared.publisher.lock().await;
        if let Some((_, channel)) = publisher.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *publisher = None;
        let connection = self.connect().await?;
        let channel = confirming_channel(&connection).await?;
        topology::declare_exchange(&channel, &self.shared.exchange).await?;
        *publisher = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// A returned message (no queue bound), by the bus's [`Unroutable`] policy.
    fn unroutable(&self, message_id: Uuid, reason: String) -> Result<(), BusError> {
        match self.shared.unroutable {
            Unroutable::Fail => Err(BusError::Rejected { message_id, reason }),
            Unroutable::Skip => {
                log_warn!(
                    exchange = &*self.shared.exchange,
                    message_id = %message_id,
                    reason = &*reason,
                    "no queue is bound for the message: published to nobody (the store keeps the event)"
                );
                Ok(())
            }
        }
    }

    /// Forgets the publishing connection, so the next publish connects again.
    async fn reset(&self) {
        if let Some((connection, _)) = self.shared.publisher.lock().await.take() {
            let _ = connection.close(200, "reconnecting".into()).await;
        }
    }
}

/// A channel with publisher confirms on.
async fn confirming_channel(connection: &Connection) -> Result<Channel, BusError> {
    let channel = connection.create_channel().await.map_err(unavailable)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(unavailable)?;
    Ok(channel)
}

/// Publishes `message` on `channel` to `exchange` with `routing_key` and waits for the
/// broker's confirmation.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: ShortString,
    message: &BusMessage,
    state: &DeliveryState,
    timeout: Duration,
) -> Result<(), BusError> {
    let confirm = send(channel, exchange, routing_key, message, state).await?;
    let deadline = Instant::now() + timeout;
    // Alone in flight on its channel, a message is the one any return names.
    match confirmed(confirm, message.message_id, deadline, timeout).await? {
        Confirmed::Routed => Ok(()),
        Confirmed::Returned { reason, .. } => Err(BusError::Rejected {
            message_id: message.message_id,
            reason,
        }),
    }
}

/// Sends `message` on `channel` to `exchange` with `routing_key` (mandatory: an unroutable
/// message comes back as an error); the confirmation is awaited by [`confirmed`].
async fn send(
    channel: &Channel,
    exchange: &str,
    routing_key: ShortString,
    message: &BusMessage,
    state: &DeliveryState,
) -> Result<PublisherConfirm, BusError> {
    let body = codec::body(message)?;
    let properties = codec::properties(message, state)?;
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(exchange.into(), routing_key, options, &body, properties)
        .await
        .map_err(unavailable)
}

/// The routing key of an event: `{aggregate_type}.{event_type}`.
fn routing_key(event: &EventEnvelope) -> String {
    format!("{}.{}", event.aggregate_type(), event.event_type)
}

impl RabbitMqBus {
    /// Sends every event, in order, without waiting between them, then waits for the
    /// confirmations; each publish span lasts until its message's confirmation. Stops
    /// sending at the first failure, which names the messages confirmed before the first
    /// one that failed (later ones may have been published too).
    async fn publish_all(
        &self,
        events: &[EventEnvelope],
        parent: SpanParent,
    ) -> Result<PublishReport, PublishFailure> {
        let channel = &self
            .channel()
            .await
            .map_err(|error| PublishFailure::new(PublishReport::default(), error))?;
        let shared = &self.shared;
        let mut in_flight: Vec<InFlight<PublisherConfirm>> = Vec::with_capacity(events.len());
        let mut outcomes = Outcomes::with_capacity(events.len());
        for event in events {
            let sending = async {
                let key = routing_key(event);
                let destination = format!("{}:{key}", shared.exchange);
                let mut message = BusMessage::new(destination, event.clone())
                    .with_attribute(MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, key.as_str());
                let publishing = instrument::start_publish(&shared.telemetry, &mut message);
                let sent = match codec::short(&message, "the routing key", key) {
                    Ok(key) => {
                        let state = DeliveryState::default();
                        let sending = send(channel, &shared.exchange, key, &message, &state);
                        publishing.run(sending).await
                    }
                    Err(error) => Err(error),
                };
                (message.message_id, publishing, sent)
            };
            let deadline = || Instant::now() + shared.confirm_timeout;
            let Some(sent) = outcomes.sent(parent, event, sending, deadline).await else {
                break;
            };
            in_flight.push(sent);
        }
        // Every confirmation first: a return can come with another message's confirm
        // (see [`Returns`]), so a message is known to be routed only once all are in.
        let timeout = shared.confirm_timeout;
        let mut confirmations = Vec::with_capacity(in_flight.len());
        for sent in in_flight {
            let InFlight {
                message_id,
                publishing,
                pending,
                deadline,
            } = sent;
            let confirmation = confirmed(pending, message_id, deadline, timeout).await;
            let confirmation = shared.returns.sort(message_id, confirmation);
            confirmations.push((message_id, publishing, confirmation));
        }
        for (message_id, publishing, confirmation) in confirmations {
            let outcome = match confirmation {
                Ok(Confirmed::Routed) => match shared.returns.take(message_id) {
                    Some(reason) => self.unroutable(message_id, reason),
                    None => Ok(()),
                },
                Ok(Confirmed::Returned { reason, .. }) => self.unroutable(message_id, reason),
                Err(error) => Err(error),
            };
            outcomes.record(message_id, publishing, outcome);
        }
        if outcomes.unavailable() {
            self.reset().await;
        }
        outcomes.report()
    }
}

event_bus_by_publish_all! {
    /// Publishes each event as one message, in order, several in flight at once; each
    /// publish span is a child of the current span and lasts until the broker confirmed.
    /// Fails with the first message that failed (the messages before it are published,
    /// later ones may be).
    RabbitMqBus
}
