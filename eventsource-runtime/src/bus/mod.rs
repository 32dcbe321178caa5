//! The event bus: stored events published as messages to the handlers that react to them
//! (send a confirmation, call another service, start a process).
//!
//! - [`EventBus`]: what a command service publishes through; the
//!   [`InMemoryEventBus`] delivers in process, and a broker adapter (RabbitMQ, NATS, ...)
//!   would implement it too;
//! - [`EventHandler`] (or a closure through [`handler_fn`]): reacts to one message at a
//!   time;
//! - [`Dispatcher`]: the consuming side any transport reuses: it hands received messages to
//!   the handlers inside the contract's spans (live, redelivery, replay, batch);
//! - [`instrument`]: the producing side's telemetry for transports (the publish span and
//!   the W3C context in the message headers).
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

mod dispatcher;
pub mod instrument;
mod memory;

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use uuid::Uuid;

use crate::event::{DecodeError, EventEnvelope, Metadata};

pub use dispatcher::Dispatcher;
pub use memory::{DEFAULT_MAX_DELIVERIES, InMemoryEventBus};

/// The destination an [`InMemoryEventBus`] publishes to unless told otherwise.
pub const DEFAULT_DESTINATION: &str = "events";

/// One stored event on its way through a bus.
#[derive(Debug, Clone, PartialEq)]
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
}

impl BusMessage {
    /// A message for `event` to `destination`, with the event's id and no header yet.
    pub fn new(destination: impl Into<Arc<str>>, event: EventEnvelope) -> Self {
        Self {
            message_id: event.event_id,
            destination: destination.into(),
            event,
            headers: Metadata::new(),
        }
    }

    /// Builder: replaces the headers (a transport rebuilding a received message).
    #[must_use]
    pub fn with_headers(mut self, headers: Metadata) -> Self {
        self.headers = headers;
        self
    }
}

/// Why a bus could not publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The transport is down or refused the connection; nothing more was published.
    #[error("event bus unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport refused one message (too large, no such destination, ...).
    #[error("message {message_id} rejected: {reason}")]
    Rejected {
        /// The refused message's id.
        message_id: Uuid,
        /// What the transport said.
        reason: String,
    },
}

impl BusError {
    /// The transport is down: wraps its error.
    pub fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(error.into())
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

/// A message one handler kept failing on, set aside after the last allowed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message, as published (headers included).
    pub message: BusMessage,
    /// The handler that failed.
    pub handler: String,
    /// How many times it was delivered to that handler.
    pub attempts: u32,
    /// The last error's `Display`.
    pub error: String,
}

/// An event handler's failure.
///
/// Wraps any error: `HandlerError::new(e)`, `.map_err(HandlerError::new)`, or `?` on a
/// [`DecodeError`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HandlerError(Box<dyn std::error::Error + Send + Sync>);

impl HandlerError {
    /// Wraps a handler's error (or a message: `HandlerError::new("smtp down")`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }

    /// The wrapped error.
    #[must_use]
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// A panic in a handler, as an error.
    fn panicked(payload: &(dyn Any + Send)) -> Self {
        Self::new(format!("handler panicked: {}", panic_message(payload)))
    }
}

impl From<DecodeError> for HandlerError {
    fn from(error: DecodeError) -> Self {
        Self::new(error)
    }
}

/// One handler failed on one message.
#[derive(Debug, thiserror::Error)]
#[error("handler `{handler}` failed on message {message_id} ({event_type}): {error}")]
pub struct HandlerFailure {
    /// The handler's name.
    pub handler: String,
    /// The message's id.
    pub message_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// What the handler returned (or the panic, as an error).
    #[source]
    pub error: HandlerError,
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
/// use eventsource_runtime::bus::{BusError, BusMessage, EventBus, PublishReport, instrument};
/// use eventsource_runtime::event::EventEnvelope;
/// use eventsource_runtime::telemetry::config::BusTelemetry;
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
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `events` (stored events, in order), one message each.
    ///
    /// # Errors
    /// [`BusError`] when the transport could not take a message; the messages before it
    /// may have been published.
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError>;
}

#[async_trait]
impl<B: EventBus + ?Sized> EventBus for Arc<B> {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        (**self).publish(events).await
    }
}

/// Reacts to published events, one message at a time.
///
/// A bus may deliver a message more than once (after a failure, or a replay): a handler
/// should be idempotent (the message id is the event id).
///
/// ```
/// use eventsource_runtime::bus::{EventHandler, HandlerError};
/// use eventsource_runtime::event::EventEnvelope;
///
/// struct AuditLog;
///
/// #[eventsource_runtime::async_trait]
/// impl EventHandler for AuditLog {
///     fn name(&self) -> &str { "audit-log" }
///     fn handles(&self, event_type: &str) -> bool { event_type.starts_with("Order") }
///     async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
///         println!("{} {} v{}", event.event_type, event.aggregate_id(), event.version);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// A stable name (in telemetry, failures and dead letters).
    fn name(&self) -> &str;

    /// Whether the handler wants events of this type; others are not delivered to it.
    fn handles(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }

    /// Handles one event.
    ///
    /// # Errors
    /// Whatever kept the handler from doing its work; the bus may deliver the message
    /// again.
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError>;
}

/// A handler made of a name and an async closure: see [`handler_fn`].
pub struct FnHandler<F> {
    name: Cow<'static, str>,
    event_types: Option<Vec<String>>,
    handle: F,
}

impl<F> std::fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnHandler")
            .field("name", &self.name)
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

/// A handler named `name` that runs `handle` with (a clone of) each event.
///
/// The closure returns a future of `Result<(), E>`, `E` converting into [`HandlerError`]
/// (`HandlerError` itself, or a [`DecodeError`]).
///
/// ```
/// use eventsource_runtime::bus::{HandlerError, InMemoryEventBus, handler_fn};
///
/// let bus = InMemoryEventBus::new();
/// bus.subscribe(
///     handler_fn("send-confirmation", |event| async move {
///         println!("confirming order {}", event.aggregate_id());
///         Ok::<(), HandlerError>(())
///     })
///     .only(["OrderPlaced"]),
/// );
/// ```
pub fn handler_fn<F, Fut, E>(name: impl Into<Cow<'static, str>>, handle: F) -> FnHandler<F>
where
    F: Fn(EventEnvelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<HandlerError>,
{
    FnHandler {
        name: name.into(),
        event_types: None,
        handle,
    }
}

impl<F> FnHandler<F> {
    /// Builder: the handler receives only events of these types (default: all).
    #[must_use]
    pub fn only(mut self, event_types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.event_types = Some(event_types.into_iter().map(Into::into).collect());
        self
    }
}

#[async_trait]
impl<F, Fut, E> EventHandler for FnHandler<F>
where
    F: Fn(EventEnvelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<HandlerError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn handles(&self, event_type: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        (self.handle)(event.clone()).await.map_err(Into::into)
    }
}

/// The panic payload of a handler that panicked.
pub(crate) type PanicPayload = Box<dyn Any + Send>;

/// Polls a future, turning a panic into an `Err` with the panic's payload: a handler that
/// panics fails its delivery like one returning `Err`, without unwinding through the bus
/// (and the command that published: its events are stored already).
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// A panic payload's message (`&str` or `String`), else `"panicked"`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panicked")
}
