//! [`Outgoing`]: an event on its way into a store, as the stores' shared telemetry and the
//! repository's save both handle it.

use crate::event::{EventEnvelope, Metadata, NewEvent, StreamId};

/// An event on its way into a store: as [`EventStore::append`](super::EventStore::append)
/// takes it ([`NewEvent`]), or already as the envelope it becomes, which a store that answers
/// at once fills in (the repository's in-memory save: no second list of the same events).
pub(crate) trait Outgoing: Sized {
    /// `event`, for `stream`.
    fn outgoing(event: NewEvent, stream: &StreamId) -> Self;

    /// Its metadata, for the trace context.
    fn metadata_mut(&mut self) -> &mut Metadata;

    /// The events as envelopes of `stream`, their versions and positions not yet set.
    fn into_envelopes(events: Vec<Self>, stream: &StreamId) -> Vec<EventEnvelope>;
}

impl Outgoing for NewEvent {
    #[inline]
    fn outgoing(event: NewEvent, _: &StreamId) -> Self {
        event
    }

    #[inline]
    fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    fn into_envelopes(events: Vec<Self>, stream: &StreamId) -> Vec<EventEnvelope> {
        events
            .into_iter()
            .map(|event| EventEnvelope::outgoing(event, stream))
            .collect()
    }
}

impl Outgoing for EventEnvelope {
    #[inline]
    fn outgoing(event: NewEvent, stream: &StreamId) -> Self {
        Self::outgoing(event, stream)
    }

    #[inline]
    fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    #[inline]
    fn into_envelopes(events: Vec<Self>, _: &StreamId) -> Vec<EventEnvelope> {
        events
    }
}
