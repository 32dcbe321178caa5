//! The in-process event bus: publish, then deliver inline to the subscribed handlers.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{
    BusError, BusMessage, BusTelemetry, DEFAULT_DESTINATION, DeadLetter, Dispatcher, EventBus,
    HandlerFailure, PublishReport, Subscribe, WithBusTelemetry, instrument,
};
use crate::event::EventEnvelope;
use crate::telemetry::attributes::MESSAGING_SYSTEM_IN_MEMORY;
use crate::telemetry::otel::log::log_warn;

/// How many times a message is delivered to a failing handler, by default, before it is
/// dead-lettered.
pub const DEFAULT_MAX_DELIVERIES: u32 = 3;

/// An event bus in process memory: for tests, demos and single-process applications.
///
/// [`publish`](EventBus::publish) publishes each event as one message (a publish span each,
/// ended once the message is enqueued), then delivers the messages inline, in order: when
/// `publish` returns, every interested handler has seen them. A handler that fails (or
/// panics) gets the message again, alone, up to [`with_max_deliveries`](Self::with_max_deliveries)
/// deliveries in all; then the message goes to the [dead letters](Self::dead_letters) (and
/// a warning is logged): nothing is lost, and the other handlers are not held up.
///
/// Cheap to clone; clones share the handlers and the dead letters. The builder methods
/// configure the value they are called on: call them before cloning.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use eventsource_runtime::bus::{EventBus, HandlerError, InMemoryEventBus, Subscribe};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
/// # };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = InMemoryEventBus::new().with_destination("orders").with_max_deliveries(2);
/// let calls = Arc::new(AtomicUsize::new(0));
/// let seen = Arc::clone(&calls);
/// bus.subscribe_fn("flaky", move |_event| {
///     let seen = Arc::clone(&seen);
///     async move {
///         seen.fetch_add(1, Ordering::SeqCst);
///         Err(HandlerError::new("smtp down"))
///     }
/// });
///
/// let report = bus.publish(&[event]).await.unwrap();
/// assert_eq!(calls.load(Ordering::SeqCst), 2, "delivered, then redelivered once");
/// assert_eq!(report.dead_letters.len(), 1);
/// assert_eq!(bus.dead_letters()[0].handler, "flaky");
/// # });
/// ```
#[derive(Clone)]
pub struct InMemoryEventBus {
    dispatcher: Dispatcher,
    max_deliveries: u32,
    batch: bool,
    dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self {
            dispatcher: Dispatcher::new(
                DEFAULT_DESTINATION,
                BusTelemetry::new(MESSAGING_SYSTEM_IN_MEMORY),
            ),
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            batch: false,
            dead_letters: Arc::default(),
        }
    }
}

impl std::fmt::Debug for InMemoryEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryEventBus")
            .field("destination", self.dispatcher.destination())
            .field("handlers", &self.dispatcher.handler_names())
            .field("max_deliveries", &self.max_deliveries)
            .field("batch", &self.batch)
            .field("dead_letters", &self.lock_dead_letters().len())
            .finish()
    }
}

impl WithBusTelemetry for InMemoryEventBus {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut BusTelemetry)) -> Self {
        self.dispatcher = self.dispatcher.configure_telemetry(change);
        self
    }
}

impl Subscribe for InMemoryEventBus {
    fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

impl InMemoryEventBus {
    /// A bus with no handler, publishing to [`DEFAULT_DESTINATION`], spans on, up to
    /// [`DEFAULT_MAX_DELIVERIES`] deliveries per message and handler.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: the destination name (`messaging.destination.name`).
    #[must_use]
    pub fn with_destination(mut self, destination: impl Into<Arc<str>>) -> Self {
        self.dispatcher = self.dispatcher.with_destination(destination);
        self
    }

    /// Builder: how many times in all a message is delivered to a handler that fails on it
    /// before it is dead-lettered (at least 1; default [`DEFAULT_MAX_DELIVERIES`]).
    #[must_use]
    pub fn with_max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.max_deliveries = max_deliveries.max(1);
        self
    }

    /// Builder: deliver the messages of one `publish` together, in one consume span linked
    /// to each of them (a batch), instead of one consume span per message, each a child of
    /// its publish span (the default).
    #[must_use]
    pub fn with_batch_delivery(mut self, batch: bool) -> Self {
        self.batch = batch;
        self
    }

    /// The destination messages are published to.
    #[must_use]
    pub fn destination(&self) -> &str {
        self.dispatcher.destination()
    }

    /// The messages set aside so far, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock_dead_letters().clone()
    }

    /// Delivers stored events (read back from a store) to the handlers, each in a consume
    /// span that is a new root linked to the span that appended it. Failures are returned,
    /// not redelivered: the caller decides whether to replay again.
    pub async fn replay(&self, events: &[EventEnvelope]) -> Vec<HandlerFailure> {
        self.dispatcher.replay(events).await
    }

    fn lock_dead_letters(&self) -> std::sync::MutexGuard<'_, Vec<DeadLetter>> {
        self.dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Redelivers each failed message to the handler that failed, alone, until it
    /// succeeds or has had its deliveries; returns what is left: the dead letters.
    async fn redeliver(
        &self,
        messages: &[BusMessage],
        failures: Vec<HandlerFailure>,
    ) -> Vec<DeadLetter> {
        let mut dead = Vec::new();
        for failure in failures {
            let Some(message) = messages.iter().find(|m| m.message_id == failure.message_id) else {
                continue;
            };
            let handler = [failure.handler];
            let mut last_error = Some(failure.error);
            let mut attempts = 1;
            while attempts < self.max_deliveries {
                attempts += 1;
                match self
                    .dispatcher
                    .redeliver(message, attempts, &handler)
                    .await
                    .pop()
                {
                    None => {
                        last_error = None;
                        break;
                    }
                    Some(again) => last_error = Some(again.error),
                }
            }
            if let Some(error) = last_error {
                let [handler] = handler;
                instrument::dead_lettered(MESSAGING_SYSTEM_IN_MEMORY, message);
                dead.push(DeadLetter {
                    message: message.clone(),
                    handler,
                    attempts,
                    error: error.to_string(),
                });
            }
        }
        dead
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let telemetry = self.dispatcher.telemetry();
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            let message = BusMessage::new(Arc::clone(self.dispatcher.destination()), event.clone());
            // "Enqueue": the publish span ends here, before any delivery.
            let enqueued =
                instrument::publish(telemetry, message, |message| async move { Ok(message) })
                    .await?;
            messages.push(enqueued);
        }
        let failures = if self.batch {
            self.dispatcher.deliver_batch(&messages).await
        } else {
            let mut failures = Vec::new();
            for message in &messages {
                failures.extend(self.dispatcher.deliver(message).await);
            }
            failures
        };
        let dead = self.redeliver(&messages, failures).await;
        for letter in &dead {
            log_warn!(
                handler = letter.handler.as_str(),
                message_id = %letter.message.message_id,
                event_type = letter.message.event.event_type.as_ref(),
                attempts = letter.attempts,
                error = letter.error.as_str(),
                "message dead-lettered: the handler failed on every delivery"
            );
        }
        if !dead.is_empty() {
            self.lock_dead_letters().extend(dead.iter().cloned());
        }
        let ids = messages.iter().map(|m| m.message_id).collect();
        Ok(PublishReport::new(ids).with_dead_letters(dead))
    }
}
