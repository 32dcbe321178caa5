//! Event handlers: what reacts to published events, one message at a time, and how they
//! fail.

use crate::event::upcast::Upcasters;
use std::any::Any;
use std::borrow::Cow;
use std::future::Future;

use async_trait::async_trait;
use uuid::Uuid;

use crate::event::{DecodeError, EventEnvelope};

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
    pub(crate) fn panicked(payload: &(dyn Any + Send)) -> Self {
        Self::new(format!(
            "handler panicked: {}",
            crate::panic::message(payload)
        ))
    }
}

impl From<DecodeError> for HandlerError {
    fn from(error: DecodeError) -> Self {
        Self::new(error)
    }
}

/// A message named a handler its group does not have: a retry for a handler that was
/// renamed or removed in a deploy. No retry can help, so the adapters dead-letter the
/// message at once with this reason (see [`DeliveryState::after`](super::wire::DeliveryState::after)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no handler named `{handler}` in this consumer group (renamed or removed?)")]
pub struct UnknownHandler {
    /// The name the message carried.
    pub handler: String,
}

impl UnknownHandler {
    /// The handler named `handler` is not subscribed.
    pub fn new(handler: impl Into<String>) -> Self {
        Self {
            handler: handler.into(),
        }
    }
}

/// One handler failed on one message.
#[derive(Debug, thiserror::Error)]
#[error("handler `{handler}` failed on message {message_id} ({event_type})")]
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

impl HandlerFailure {
    /// Whether the failure is a handler the group does not have ([`UnknownHandler`]).
    #[must_use]
    pub fn is_unknown_handler(&self) -> bool {
        self.error.inner().is::<UnknownHandler>()
    }
}

/// What a handler did with a message it was given: see [`EventHandler::process`].
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::Mutex;
///
/// use eventsource_runtime::bus::{EventHandler, HandlerError, Handling};
/// use eventsource_runtime::event::EventEnvelope;
///
/// /// Remembers the messages it handled (until the process ends) and tells the dispatcher
/// /// when it skips one.
/// struct Greeter { seen: Mutex<HashSet<uuid::Uuid>> }
///
/// #[eventsource_runtime::async_trait]
/// impl EventHandler for Greeter {
///     fn name(&self) -> &str { "greeter" }
///     async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
///         self.process(event).await.map(drop)
///     }
///     async fn process(&self, event: &EventEnvelope) -> Result<Handling, HandlerError> {
///         if !self.seen.lock().unwrap().insert(event.event_id) {
///             return Ok(Handling::Duplicate); // the handle span says so
///         }
///         println!("welcome, {}", event.aggregate_id());
///         Ok(Handling::Handled)
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handling {
    /// The handler ran and succeeded.
    Handled,
    /// The handler recognised the message as one it had already handled and acknowledged
    /// it without running again (see [`Idempotent`](super::Idempotent)). The handle span
    /// says `eventsource.handler.duplicate = true`.
    Duplicate,
}

/// Reacts to published events, one message at a time.
///
/// A bus may deliver a message more than once (after a failure, or a replay): a handler
/// should be idempotent (the message id is the event id), or be wrapped in an
/// [`Idempotent`](super::Idempotent), which records the messages it handled.
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

    /// How events published by older code become the events this handler reads (see
    /// [`upcast`](crate::event::upcast)): the [`Dispatcher`](super::Dispatcher) upcasts a
    /// message with them before [`handles`](Self::handles) and the handler see it, and a
    /// message that cannot be upcast fails for this handler (and is dead-lettered like any
    /// failure). None by default: `EventEnvelope::decode`/`decode_as` still upcast by the
    /// event types' own registries, without the consume span saying so.
    fn upcasters(&self) -> Upcasters {
        Upcasters::default()
    }

    /// Handles one event.
    ///
    /// # Errors
    /// Whatever kept the handler from doing its work; the bus may deliver the message
    /// again.
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError>;

    /// Handles one event and says whether it ran or skipped it as a duplicate: what a
    /// [`Dispatcher`](super::Dispatcher) calls. The default runs [`handle`](Self::handle);
    /// a handler that deduplicates (such as [`Idempotent`](super::Idempotent)) overrides
    /// it, so that the handle span can tell.
    ///
    /// # Errors
    /// As [`handle`](Self::handle).
    async fn process(&self, event: &EventEnvelope) -> Result<Handling, HandlerError> {
        self.handle(event).await.map(|()| Handling::Handled)
    }
}

/// A handler made of a name and an async closure: see [`handler_fn`].
pub struct FnHandler<F> {
    name: Cow<'static, str>,
    event_types: Option<Vec<String>>,
    upcasters: Upcasters,
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
/// use eventsource_runtime::bus::{HandlerError, InMemoryEventBus, Subscribe, handler_fn};
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
        upcasters: Upcasters::default(),
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

    /// Builder: messages are upcast with `upcasters` (usually an event set's,
    /// `OrderEvent::upcasters()`) before the handler sees them; see
    /// [`EventHandler::upcasters`].
    #[must_use]
    pub fn upcasting(mut self, upcasters: &Upcasters) -> Self {
        self.upcasters = upcasters.clone();
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

    fn upcasters(&self) -> Upcasters {
        self.upcasters.clone()
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        (self.handle)(event.clone()).await.map_err(Into::into)
    }
}
