//! What the brokers' publishes share: whose child each publish span is, a message sent and
//! not yet acknowledged, the outcomes of one call gathered in order, and the [`EventBus`]
//! implementation over a bus's `publish_all`.
//!
//! [`EventBus`]: crate::bus::EventBus

use std::future::Future;

use tokio::time::Instant;
use uuid::Uuid;

use crate::bus::instrument::{self, Publishing};
use crate::bus::{BusError, PublishFailure, PublishReport};
use crate::event::EventEnvelope;

/// Whose child a message's publish span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanParent {
    /// The current span (a command publishing what it just stored).
    Current,
    /// The trace context stored with the event (a relay).
    Stored,
}

impl SpanParent {
    /// Runs `sending` (which starts the publish span of `event`'s message) under this
    /// parent.
    async fn run<F: Future>(self, event: &EventEnvelope, sending: F) -> F::Output {
        match self {
            Self::Current => sending.await,
            Self::Stored => instrument::in_stored_context(event, sending).await,
        }
    }
}

/// A message sent and not yet acknowledged: `pending` is the broker's acknowledgement (a
/// publisher confirm, a JetStream ack, a delivery report) to wait for until `deadline`.
pub(crate) struct InFlight<P> {
    pub(crate) message_id: Uuid,
    pub(crate) publishing: Publishing,
    pub(crate) pending: P,
    pub(crate) deadline: Instant,
}

/// The outcomes of one publish call, in order: the ids acknowledged before the first
/// failure, and that failure.
pub(crate) struct Outcomes {
    ids: Vec<Uuid>,
    failure: Option<BusError>,
}

impl Outcomes {
    /// No outcome yet, room for `capacity` ids.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            ids: Vec::with_capacity(capacity),
            failure: None,
        }
    }

    /// Whether a message failed.
    #[cfg(feature = "nats")]
    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Whether the failure is that the broker is unavailable (the bus reconnects).
    #[cfg(any(feature = "rabbitmq", feature = "kafka"))]
    pub(crate) fn unavailable(&self) -> bool {
        matches!(self.failure, Some(BusError::Unavailable(_)))
    }

    /// Sends one message under `parent`: `sending` starts the publish span of `event`'s
    /// message and sends it. The message in flight until `deadline()` (taken once sent),
    /// or `None` when the send failed (its span ended, the failure recorded).
    pub(crate) async fn sent<P>(
        &mut self,
        parent: SpanParent,
        event: &EventEnvelope,
        sending: impl Future<Output = (Uuid, Publishing, Result<P, BusError>)>,
        deadline: impl FnOnce() -> Instant,
    ) -> Option<InFlight<P>> {
        let (message_id, publishing, sent) = parent.run(event, sending).await;
        match sent {
            Ok(pending) => Some(InFlight {
                message_id,
                publishing,
                pending,
                deadline: deadline(),
            }),
            Err(error) => {
                self.record(message_id, publishing, Err(error));
                None
            }
        }
    }

    /// Ends the publish span of `message_id` with `outcome` and records it: its id while
    /// nothing failed before it, else the first failure.
    pub(crate) fn record(
        &mut self,
        message_id: Uuid,
        publishing: Publishing,
        outcome: Result<(), BusError>,
    ) {
        publishing.end(&outcome);
        match outcome {
            Ok(()) if self.failure.is_none() => self.ids.push(message_id),
            Ok(()) => {}
            Err(error) => {
                self.failure.get_or_insert(error);
            }
        }
    }

    /// The report of the call: the ids published, or the first failure with them.
    pub(crate) fn report(self) -> Result<PublishReport, PublishFailure> {
        match self.failure {
            None => Ok(PublishReport::new(self.ids)),
            Some(error) => Err(PublishFailure::new(PublishReport::new(self.ids), error)),
        }
    }
}

/// Implements [`EventBus`](crate::bus::EventBus) for a broker's bus by its
/// `publish_all(events, SpanParent)`: `publish` with the current span as each publish
/// span's parent (`docs` its documentation), `publish_stored` with each event's stored
/// context.
macro_rules! event_bus_by_publish_all {
    ($(#[$docs:meta])* $bus:ident) => {
        #[async_trait::async_trait]
        impl $crate::bus::EventBus for $bus {
            $(#[$docs])*
            async fn publish(
                &self,
                events: &[$crate::event::EventEnvelope],
            ) -> Result<$crate::bus::PublishReport, $crate::bus::BusError> {
                let parent = $crate::broker::publish::SpanParent::Current;
                let published = self.publish_all(events, parent).await;
                published.map_err(|failure| failure.error)
            }

            /// As [`publish`](crate::bus::EventBus::publish), each publish span a child of the
            /// context stored with its event.
            async fn publish_stored(
                &self,
                events: &[$crate::event::EventEnvelope],
            ) -> Result<$crate::bus::PublishReport, $crate::bus::PublishFailure> {
                let parent = $crate::broker::publish::SpanParent::Stored;
                self.publish_all(events, parent).await
            }
        }
    };
}
pub(crate) use event_bus_by_publish_all;
