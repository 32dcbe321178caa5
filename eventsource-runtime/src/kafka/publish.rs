//! Publishing: every event of a call sent without waiting, then each publish span ended by
//! its record's delivery report.

use rdkafka::producer::DeliveryFuture;

use super::KafkaBus;
use crate::broker::publish::{InFlight, Outcomes, SpanParent, event_bus_by_publish_all};
use crate::bus::instrument;
use crate::bus::wire::DeliveryState;
use crate::bus::{BusMessage, PublishFailure, PublishReport};
use crate::event::EventEnvelope;
use crate::telemetry::attributes::MESSAGING_KAFKA_MESSAGE_KEY;

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
        // The topics first: a producer made there is heard refusing from its start.
        let topics = events.iter().map(|e| self.topic_of(e.aggregate_type()));
        self.ensure_topics(topics.collect()).await.map_err(fail)?;
        let producer = self.producer().map_err(fail)?;
        let telemetry = &self.shared.telemetry;
        let mut in_flight: Vec<InFlight<DeliveryFuture>> = Vec::with_capacity(events.len());
        let mut outcomes = Outcomes::with_capacity(events.len());
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
            let deadline = || self.deadline();
            let Some(sent) = outcomes.sent(parent, event, sending, deadline).await else {
                break;
            };
            in_flight.push(sent);
        }
        for sent in in_flight {
            let outcome = self
                .delivered(&producer, sent.pending, sent.message_id, sent.deadline)
                .await;
            outcomes.record(sent.message_id, sent.publishing, outcome);
        }
        if outcomes.unavailable() {
            self.reset(&producer);
        }
        outcomes.report()
    }
}

event_bus_by_publish_all! {
    /// Publishes each event as one record, in order, several in flight at once; each
    /// publish span is a child of the current span and lasts until the record's delivery
    /// report. Fails with the first record that failed (the records before it are
    /// delivered, later ones may be).
    KafkaBus
}
