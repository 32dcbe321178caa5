//! A bus that writes each publish into a history: `invoke` before the broker is asked,
//! `ok` for what it acknowledged, `info` for what it may or may not have taken. Wrapped
//! around the bus a relay publishes on, it lets the checker tell a message published twice
//! (each copy handled once) from a message handled twice.

use std::sync::Arc;

use async_trait::async_trait;
use eventsource_runtime::bus::{BusError, EventBus, PublishFailure, PublishReport};
use eventsource_runtime::event::EventEnvelope;

use super::op::{Call, OpKind};
use super::writer::HistoryWriter;

/// `inner`, its publishes written to `history`.
pub struct RecordingBus {
    inner: Arc<dyn EventBus>,
    history: Arc<HistoryWriter>,
}

impl RecordingBus {
    /// Records what is published on `inner` in `history`.
    pub fn new(inner: Arc<dyn EventBus>, history: Arc<HistoryWriter>) -> Self {
        Self { inner, history }
    }

    fn invoke(&self, events: &[EventEnvelope]) -> super::writer::OpRef {
        let event_ids = events.iter().map(|event| event.event_id).collect();
        (self.history.invoke(Call::Publish { event_ids })).expect("the history is writable")
    }

    /// A publish that failed part-way: the first `sent` acknowledged, the rest unknown (a
    /// broker may take a message whose acknowledgement never came back).
    fn part_way(&self, invoked: &super::writer::OpRef, events: &[EventEnvelope], sent: usize) {
        let ids = |events: &[EventEnvelope]| events.iter().map(|event| event.event_id).collect();
        let (acknowledged, unknown) = events.split_at(sent.min(events.len()));
        let done = Call::Publish {
            event_ids: ids(acknowledged),
        };
        (self.history.ok_with(invoked, done)).expect("the history is writable");
        let maybe = Call::Publish {
            event_ids: ids(unknown),
        };
        (self.history.record(OpKind::Info, maybe)).expect("the history is writable");
    }
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let invoked = self.invoke(events);
        let published = self.inner.publish(events).await;
        match &published {
            Ok(_) => self.history.ok(&invoked),
            Err(_) => self.history.info(&invoked),
        }
        .expect("the history is writable");
        published
    }

    async fn publish_stored(
        &self,
        events: &[EventEnvelope],
    ) -> Result<PublishReport, PublishFailure> {
        let invoked = self.invoke(events);
        let published = self.inner.publish_stored(events).await;
        match &published {
            Ok(_) => (self.history.ok(&invoked)).expect("the history is writable"),
            Err(failure) => self.part_way(&invoked, events, failure.published.message_ids.len()),
        }
        published
    }
}
