//! Idempotent handlers: the messages a handler handled are recorded, per handler, in a
//! [`ProcessedMessages`] store, so that a redelivered message is acknowledged without
//! running the handler again.

mod claims;
mod memory;

use async_trait::async_trait;
use uuid::Uuid;

use super::{EventHandler, HandlerError, Handling};
use crate::event::EventEnvelope;
use crate::store::StoreError;

#[cfg(feature = "sqlite")]
pub(crate) use claims::{ClaimGuard, ClaimLocks};

/// In a wrapper's `impl EventHandler`: the wrapped `self.handler`'s name and event types.
macro_rules! wrapped_identity {
    () => {
        fn name(&self) -> &str {
            self.handler.name()
        }

        fn handles(&self, event_type: &str) -> bool {
            self.handler.handles(event_type)
        }

        fn upcasters(&self) -> $crate::event::upcast::Upcasters {
            self.handler.upcasters()
        }
    };
}
pub use memory::InMemoryProcessedMessages;
#[cfg(feature = "postgres")]
pub(crate) use wrapped_identity;

/// Where the messages each handler handled are recorded (the message id is the event id).
///
/// A handler's message is first [claimed](Self::claim): `None` when it was recorded
/// already, otherwise a [`MessageClaim`] that keeps other claims of the same handler and
/// message waiting (in this process, or in every process sharing a PostgreSQL store) until
/// it is [recorded](MessageClaim::record), after the handler succeeded, or
/// [released](MessageClaim::release) (or dropped), after it failed. A released message is
/// not recorded, so its next delivery runs the handler again.
///
/// Implemented in memory ([`InMemoryProcessedMessages`]), by `SqliteProcessedMessages`
/// (feature `sqlite`) and `PostgresProcessedMessages` (feature `postgres`).
///
/// ```
/// use eventsource_runtime::bus::{InMemoryProcessedMessages, ProcessedMessages};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let processed = InMemoryProcessedMessages::new();
/// let message = uuid::Uuid::now_v7();
///
/// let claim = processed.claim("send-confirmation", message).await?.expect("new");
/// // ... the handler runs and succeeds ...
/// claim.record().await?;
///
/// assert!(processed.claim("send-confirmation", message).await?.is_none(), "handled");
/// assert!(processed.is_recorded("send-confirmation", message).await?);
/// assert!(!processed.is_recorded("audit", message).await?, "recorded per handler");
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[async_trait]
pub trait ProcessedMessages: Send + Sync + 'static {
    /// Claims `message_id` for `handler`: `None` when it is recorded as handled, otherwise
    /// the claim, once no other claim of the pair is held (this waits for it).
    ///
    /// # Errors
    /// The backend's errors.
    async fn claim(
        &self,
        handler: &str,
        message_id: Uuid,
    ) -> Result<Option<Box<dyn MessageClaim>>, StoreError>;

    /// Whether `handler` is recorded as having handled `message_id`.
    ///
    /// # Errors
    /// The backend's errors.
    async fn is_recorded(&self, handler: &str, message_id: Uuid) -> Result<bool, StoreError>;
}

/// A claim on one handler's message, from [`ProcessedMessages::claim`].
///
/// Dropping it without [`record`](Self::record) releases it, as
/// [`release`](Self::release) does (which a caller that can wait should prefer: a
/// database claim is then given up at once).
#[async_trait]
pub trait MessageClaim: Send {
    /// Records the message as handled by the handler, and ends the claim.
    ///
    /// # Errors
    /// The backend's errors: the message is then not recorded.
    async fn record(self: Box<Self>) -> Result<(), StoreError>;

    /// Ends the claim without recording the message.
    async fn release(self: Box<Self>);
}

#[async_trait]
impl<S: ProcessedMessages + ?Sized> ProcessedMessages for std::sync::Arc<S> {
    async fn claim(
        &self,
        handler: &str,
        message_id: Uuid,
    ) -> Result<Option<Box<dyn MessageClaim>>, StoreError> {
        (**self).claim(handler, message_id).await
    }

    async fn is_recorded(&self, handler: &str, message_id: Uuid) -> Result<bool, StoreError> {
        (**self).is_recorded(handler, message_id).await
    }
}

/// Why an [`Idempotent`] handler could not handle a message, besides the handler's own
/// errors (which it returns as they are). Either way the message is not recorded, and its
/// next delivery tries again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// The message could not be claimed: the handler did not run.
    #[error("cannot claim the message")]
    Claim(#[source] StoreError),
    /// The handler succeeded, but recording the message as handled failed: a redelivery
    /// runs the handler again (with a transactional handler on PostgreSQL, its writes
    /// were rolled back with the record, unless the connection was lost while
    /// committing, in which case the record and the writes were committed together or
    /// not at all).
    #[error("cannot record the message as handled")]
    Record(#[source] StoreError),
}

/// An [`EventHandler`] that runs `handler` at most once per message: the messages it
/// handled are recorded in a [`ProcessedMessages`] store (the message id is the event id),
/// and a redelivered one is acknowledged without running it again. The handle span then
/// says `eventsource.handler.duplicate = true`.
///
/// The message is recorded only after the handler succeeded: a failing (or panicking)
/// handler leaves it unrecorded, so the next delivery runs it again. Concurrent deliveries
/// of one message wait for each other (across processes with a PostgreSQL store), so the
/// handler runs once. The handler's own effects and the record are two steps, though:
/// a process that dies between them runs the handler again on redelivery (at least once).
/// On PostgreSQL, a `postgres::TransactionalIdempotent` handler writes in the
/// transaction that records the message, so both commit together (exactly once).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use eventsource_runtime::bus::{
///     BusMessage, BusTelemetry, Dispatcher, HandlerError, Idempotent, InMemoryProcessedMessages,
///     handler_fn,
/// };
/// # use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
/// # };
///
/// let sent = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&sent);
/// let send_confirmation = handler_fn("send-confirmation", move |_event| {
///     counter.fetch_add(1, Ordering::SeqCst);
///     async { Ok::<(), HandlerError>(()) }
/// });
///
/// let dispatcher = Dispatcher::new("orders", BusTelemetry::new("rabbitmq"));
/// dispatcher.subscribe(Idempotent::new(send_confirmation, InMemoryProcessedMessages::new()));
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let message = BusMessage::new("orders", event);
/// assert!(dispatcher.deliver(&message).await.is_empty());
/// assert!(dispatcher.deliver(&message).await.is_empty(), "acknowledged again");
/// assert_eq!(sent.load(Ordering::SeqCst), 1, "but sent once");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Idempotent<H, S> {
    handler: H,
    processed: S,
}

impl<H: EventHandler, S: ProcessedMessages> Idempotent<H, S> {
    /// `handler`, recording the messages it handled in `processed` (under the handler's
    /// [name](EventHandler::name): keep it stable).
    pub fn new(handler: H, processed: S) -> Self {
        Self { handler, processed }
    }

    /// The wrapped handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Where the handled messages are recorded.
    pub fn processed(&self) -> &S {
        &self.processed
    }
}

#[async_trait]
impl<H: EventHandler, S: ProcessedMessages> EventHandler for Idempotent<H, S> {
    wrapped_identity!();

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        self.process(event).await.map(drop)
    }

    async fn process(&self, event: &EventEnvelope) -> Result<Handling, HandlerError> {
        let claimed = self.processed.claim(self.name(), event.event_id).await;
        let Some(claim) = claimed.map_err(|e| HandlerError::new(IdempotencyError::Claim(e)))?
        else {
            return Ok(Handling::Duplicate);
        };
        if let Err(error) = self.handler.handle(event).await {
            claim.release().await;
            return Err(error);
        }
        claim
            .record()
            .await
            .map_err(|e| HandlerError::new(IdempotencyError::Record(e)))?;
        Ok(Handling::Handled)
    }
}
