//! The event bus: stored events published as messages to the handlers that react to them
//! (send a confirmation, call another service, start a process).
//!
//! - [`EventBus`]: what a command service publishes through; the
//!   [`InMemoryEventBus`] delivers in process, and a broker adapter (RabbitMQ, NATS, ...)
//!   would implement it too;
//! - [`EventHandler`] (or a closure through [`handler_fn`]): reacts to one message at a
//!   time; [`Idempotent`] runs one at most once per message, recording the messages it
//!   handled in a [`ProcessedMessages`] store (in memory, SQLite, PostgreSQL);
//! - [`Dispatcher`]: the consuming side any transport reuses: it hands received messages to
//!   the handlers inside the contract's spans (live, redelivery, replay, batch);
//! - [`Subscribe`] (handlers subscribe to any bus or consumer group the same way) and
//!   [`WithBusTelemetry`] (a bus's switch and span names, over its [`BusTelemetry`]): the
//!   builder methods every bus shares, written once, in the prelude;
//! - [`instrument`]: the producing side's telemetry for transports (the publish span and
//!   the W3C context in the message headers);
//! - [`wire`]: the one wire format of every broker adapter (body, headers, delivery state,
//!   how a delivery is settled), for the adapters here and any written outside this crate.
//!
//! Telemetry (with the `tracing` feature): each message is published inside a PRODUCER
//! span `eventsource.event_bus.publish`, child of the current span (the command's), whose
//! own context travels in the message [`headers`](BusMessage::headers). A live delivery
//! runs in a CONSUMER span `eventsource.event_bus.consume`, child of that context; a
//! redelivery, a replay or a batch is a new root linked to each source message. Each
//! handler runs in an INTERNAL span `eventsource.event_bus.handle` under it.
//!
//! ```
//! use eventsource_runtime::bus::{HandlerError, InMemoryEventBus};
//! use eventsource_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(type = "Account", events(Deposited))]
//! pub struct Account { balance: u64 }
//! impl Apply<Deposited> for Account {
//!     fn apply(&mut self, e: &Deposited) { self.balance += e.amount; }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let bus = InMemoryEventBus::new().with_destination("accounts");
//! bus.subscribe_fn("notify-owner", |event| async move {
//!     let deposit = event.decode_as::<Deposited>().expect("only deposits here")?;
//!     println!("{} cents deposited on {}", deposit.amount, event.aggregate_id());
//!     Ok::<(), HandlerError>(())
//! });
//!
//! let accounts = CommandService::<Account>::new(InMemoryEventStore::new()).with_bus(bus.clone());
//! let outcome = accounts
//!     .execute_with("acc-1", |_| Ok::<_, std::convert::Infallible>(vec![Deposited { amount: 25 }.into()]))
//!     .await
//!     .unwrap();
//! // When the command returns, every handler has seen the events.
//! let report = outcome.publish.unwrap().unwrap();
//! assert_eq!(report.message_ids, [outcome.events[0].event_id]);
//! assert!(bus.dead_letters().is_empty());
//! # });
//! ```

mod dead_letter;
mod dispatcher;
mod handler;
mod idempotent;
pub mod instrument;
mod memory;
mod runnable;
mod settings;
mod subscribe;
pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::event::{EventEnvelope, Metadata};
use crate::telemetry::otel::in_stored_context;

#[cfg(feature = "broker")]
pub(crate) use dead_letter::dead_lettered;
pub use dead_letter::{DeadLetter, DeadLetterEntry, DeadLetterQueue, UndecodableLetter};
pub use dispatcher::Dispatcher;
pub use handler::{
    EventHandler, FnHandler, HandlerError, HandlerFailure, Handling, UnknownHandler, handler_fn,
};
// For the database modules' idempotent handlers.
#[cfg(feature = "postgres")]
pub(crate) use idempotent::wrapped_identity;
#[cfg(feature = "sqlite")]
pub(crate) use idempotent::{ClaimGuard, ClaimLocks};
pub use idempotent::{
    IdempotencyError, Idempotent, InMemoryProcessedMessages, MessageClaim, ProcessedMessages,
};
pub use memory::{DEFAULT_MAX_DELIVERIES, InMemoryEventBus};
pub use runnable::RunnableGroup;
pub use settings::{BusSpanNames, BusTelemetry, WithBusTelemetry};
pub use subscribe::Subscribe;

/// The destination an [`InMemoryEventBus`] publishes to unless told otherwise.
pub const DEFAULT_DESTINATION: &str = "events";

/// One stored event on its way through a bus.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BusMessage {
    /// The message's id: the event's id, so a consumer can deduplicate redeliveries.
    pub message_id: Uuid,
    /// Where the message is published (a topic, an exchange, a subject).
    pub destination: Arc<str>,
    /// The stored event. Its [`metadata`](EventEnvelope::metadata) keeps the context of the
    /// span that appended it.
    pub event: EventEnvelope,
    /// Transport headers. The publish span writes its own W3C context (`traceparent`,
    /// `tracestate`, `baggage`) here; a consumer reads it back.
    pub headers: Metadata,
    /// What the transport knows of this message and wants on its spans (a routing key, a
    /// delivery tag, a partition), under the OpenTelemetry key of the transport's own
    /// conventions. The library's consumers make them only while the message's consume
    /// span is recorded: with tracing off they are empty.
    pub attributes: Vec<(&'static str, AttributeValue)>,
}

/// The value of one of a transport's own attributes ([`BusMessage::attributes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttributeValue {
    /// A string.
    String(String),
    /// An integer (a tag, an offset, a count).
    Int(i64),
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u64> for AttributeValue {
    /// Saturating at `i64::MAX`.
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl BusMessage {
    /// A message for `event` to `destination`, with the event's id and no header yet.
    pub fn new(destination: impl Into<Arc<str>>, event: EventEnvelope) -> Self {
        Self {
            message_id: event.event_id,
            destination: destination.into(),
            event,
            headers: Metadata::new(),
            attributes: Vec::new(),
        }
    }

    /// Builder: replaces the headers (a transport rebuilding a received message).
    #[must_use]
    pub fn with_headers(mut self, headers: Metadata) -> Self {
        self.headers = headers;
        self
    }

    /// Builder: one of the transport's own attributes for the message's spans.
    #[must_use]
    pub fn with_attribute(mut self, key: &'static str, value: impl Into<AttributeValue>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }
}

/// Why a bus could not publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The transport is down or refused the connection; nothing more was published.
    #[error("event bus unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport refused one message (too large, no route, nacked, ...).
    #[error("message {message_id} rejected: {reason}")]
    Rejected {
        /// The refused message's id.
        message_id: Uuid,
        /// What the transport said.
        reason: String,
    },
    /// The transport took the message but did not confirm it in time: it may or may not
    /// have been stored; publish it again (consumers deduplicate by message id).
    #[error("message {message_id} not confirmed within {waited:?}")]
    Unconfirmed {
        /// The unconfirmed message's id.
        message_id: Uuid,
        /// How long the publisher waited.
        waited: std::time::Duration,
    },
}

impl BusError {
    /// The transport is down: wraps its error.
    pub fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(error.into())
    }

    /// Why the broker could not be used, when the adapter could tell: a refused connection,
    /// refused credentials, a failed TLS handshake, no answer in time, an address that is
    /// not one ([`BrokerUnreachable`] is then the error's source).
    ///
    /// ```
    /// use eventsource_runtime::bus::{BrokerUnreachable, BusError, UnavailableReason};
    ///
    /// let error = BusError::unavailable(BrokerUnreachable::new(
    ///     UnavailableReason::AuthenticationFailed,
    ///     "127.0.0.1:5672",
    ///     None,
    /// ));
    /// assert_eq!(error.unavailable_reason(), Some(UnavailableReason::AuthenticationFailed));
    /// ```
    #[must_use]
    pub fn unavailable_reason(&self) -> Option<UnavailableReason> {
        match self {
            Self::Unavailable(source) => source
                .downcast_ref::<BrokerUnreachable>()
                .map(|unreachable| unreachable.reason),
            _ => None,
        }
    }
}

/// What kept a broker from being used: see [`BusError::unavailable_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// Nothing accepts connections at the address.
    ConnectionRefused,
    /// The broker refused the credentials.
    AuthenticationFailed,
    /// The TLS connection failed (`TLS connection failed at host:port`): an untrusted certificate, a host-name mismatch, a client
    /// certificate wanted or refused, a plain connection to a TLS-only server; the
    /// [`BrokerUnreachable`]'s source is then a `broker::TlsFailure` saying which, when the adapter
    /// could tell (with a broker adapter's feature).
    Tls,
    /// The broker did not answer in time.
    TimedOut,
    /// The address is not one this broker's URLs take.
    InvalidUrl,
}

impl std::fmt::Display for UnavailableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ConnectionRefused => "connection refused",
            Self::AuthenticationFailed => "authentication refused",
            Self::Tls => "TLS connection failed",
            Self::TimedOut => "no answer in time",
            Self::InvalidUrl => "not a valid broker URL",
        })
    }
}

/// A broker that could not be used: why, and where (`host:port`, never a password). The
/// source of a [`BusError::Unavailable`] when the adapter could tell why.
#[derive(Debug, thiserror::Error)]
#[error("{reason} at {server}")]
#[non_exhaustive]
pub struct BrokerUnreachable {
    /// Why.
    pub reason: UnavailableReason,
    /// Where: the broker's `host:port`.
    pub server: String,
    /// The client's own error, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BrokerUnreachable {
    /// The broker at `server` could not be used, for `reason`.
    pub fn new(
        reason: UnavailableReason,
        server: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            reason,
            server: server.into(),
            source,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The ids of the messages published, in order.
    pub message_ids: Vec<Uuid>,
    /// Messages that a handler still failed on after the last allowed delivery, set aside
    /// (reported by transports that deliver inline, such as [`InMemoryEventBus`]).
    pub dead_letters: Vec<DeadLetter>,
}

impl PublishReport {
    /// A report of these published messages, with no dead letter.
    #[must_use]
    pub fn new(message_ids: Vec<Uuid>) -> Self {
        Self {
            message_ids,
            dead_letters: Vec::new(),
        }
    }

    /// Builder: the messages dead-lettered during the publish.
    #[must_use]
    pub fn with_dead_letters(mut self, dead_letters: Vec<DeadLetter>) -> Self {
        self.dead_letters = dead_letters;
        self
    }
}

/// A publisher of stored events: what [`CommandService::with_bus`] publishes through after
/// a save.
///
/// Object safe. A broker adapter publishes each event as one [`BusMessage`] through
/// [`instrument::publish`], which gives it the contract's PRODUCER span and puts that span's
/// context in the message headers; its consumer hands received messages to a
/// [`Dispatcher`].
///
/// ```
/// use eventsource_runtime::bus::{BusError, BusMessage, BusTelemetry, EventBus, PublishReport, instrument};
/// use eventsource_runtime::event::EventEnvelope;
///
/// /// The skeleton of a broker adapter.
/// struct Broker { telemetry: BusTelemetry }
///
/// impl Broker {
///     async fn send(&self, message: BusMessage) -> Result<(), BusError> {
///         // Serialize `message.event`, copy `message.headers` into the broker's headers...
///         let _ = message;
///         Ok(())
///     }
/// }
///
/// #[eventsource_runtime::async_trait]
/// impl EventBus for Broker {
///     async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
///         let mut ids = Vec::new();
///         for event in events {
///             let message = BusMessage::new("orders", event.clone());
///             ids.push(message.message_id);
///             instrument::publish(&self.telemetry, message, |m| self.send(m)).await?;
///         }
///         Ok(PublishReport::new(ids))
///     }
/// }
///
/// let broker: Box<dyn EventBus> = Box::new(Broker { telemetry: BusTelemetry::new("rabbitmq") });
/// # drop(broker);
/// ```
///
/// [`CommandService::with_bus`]: crate::command::CommandService::with_bus
#[async_trait]
#[auto_impl::auto_impl(Arc)]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `events` (stored events, in order), one message each.
    ///
    /// # Errors
    /// [`BusError`] when the transport could not take a message; the messages before it
    /// may have been published.
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError>;

    /// Publishes `events` read back from the store (what a [`Relay`] does): each message's
    /// publish span is a child of the trace context stored with its event, not of the
    /// current span, so the consumers continue the trace of the command that stored it.
    ///
    /// The default publishes the events one at a time through [`publish`](Self::publish),
    /// each inside its stored context; a transport that can have several messages in
    /// flight overrides it.
    ///
    /// # Errors
    /// A [`PublishFailure`]: the first message that could not be published, and the
    /// messages before it that were (the relay moves its checkpoint past those).
    ///
    /// [`Relay`]: crate::relay::Relay
    async fn publish_stored(
        &self,
        events: &[EventEnvelope],
    ) -> Result<PublishReport, PublishFailure> {
        let mut report = PublishReport::default();
        for event in events {
            let one = std::slice::from_ref(event);
            match in_stored_context(&event.metadata, self.publish(one)).await {
                Ok(published) => {
                    report.message_ids.extend(published.message_ids);
                    report.dead_letters.extend(published.dead_letters);
                }
                Err(error) => return Err(PublishFailure::new(report, error)),
            }
        }
        Ok(report)
    }
}

/// A publish of several messages that failed part-way.
#[derive(Debug, thiserror::Error)]
#[error("publishing failed after {} message(s)", published.message_ids.len())]
#[non_exhaustive]
pub struct PublishFailure {
    /// The messages published before the failure, in order.
    pub published: PublishReport,
    /// Why the next message was not published (later ones may have been).
    #[source]
    pub error: BusError,
}

impl PublishFailure {
    /// `published` went out, then `error` stopped the publish.
    #[must_use]
    pub fn new(published: PublishReport, error: BusError) -> Self {
        Self { published, error }
    }
}
