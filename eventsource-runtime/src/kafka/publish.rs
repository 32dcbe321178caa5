//! Publishing: every event of a call sent without waiting, then each publish span ended by
//! its record's delivery report.

use async_trait::async_trait;
use rdkafka::producer::DeliveryFuture;
use tokio::time::Instant;
use uuid::Uuid;

use super::KafkaBus;
use crate::bus::instrument;
use crate::bus::wire::DeliveryState;
use crate::bus::{BusError, BusMessage, EventBus, PublishFailure, PublishReport};
use crate::event::EventEnvelope;
use crate::telemetry::attributes::MESSAGING_KAFKA_MESSAGE_KEY;

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
