//! [`AtOnce`]: a store whose calls answer at once, called without a future.
//!
//! Which store that is stays in this module: the repository asks [`AtOnce::of`] and, given
//! one, runs its load and save steps with no future at any layer. Every other store is
//! called through [`EventStore`], with the same steps and the same spans.

use std::any::Any;

use super::backend::{Appended, Backend, Events, check_stream_unless_backend_does, operation};
use super::outgoing::Outgoing;
use super::{EventStore, ExpectedVersion, InMemoryEventStore, instrument};
use crate::event::StreamId;

/// A store that never waits: its loads and appends as plain calls, with the checks and
/// spans of [`EventStore::load`] and [`EventStore::append`].
#[derive(Clone)]
pub(crate) struct AtOnce {
    store: InMemoryEventStore,
}

impl AtOnce {
    /// `store`, if its calls answer at once (the in-memory store, given by value).
    pub(crate) fn of<S: EventStore>(store: &S) -> Option<Self> {
        let store = (store as &dyn Any).downcast_ref::<InMemoryEventStore>()?;
        Some(Self {
            store: store.clone(),
        })
    }

    /// As [`EventStore::load`].
    pub(crate) fn load(&self, stream: &StreamId, from_version: u64) -> Events {
        let store = &self.store;
        let operation = operation(store, "load");
        instrument::load_now(store.telemetry(), stream, from_version, operation, || {
            check_stream_unless_backend_does::<InMemoryEventStore>(stream)?;
            store.load_range(stream, from_version, usize::MAX)
        })
    }

    /// As [`EventStore::append`], the events given as [`NewEvent`](crate::event::NewEvent)s
    /// or already as the envelopes they become (see [`Outgoing`]).
    pub(crate) fn append<E: Outgoing>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<E>,
    ) -> Appended {
        let store = &self.store;
        let operation = operation(store, "append");
        let telemetry = store.telemetry();
        instrument::append_now(telemetry, stream, expected, events, operation, |events| {
            check_stream_unless_backend_does::<InMemoryEventStore>(stream)?;
            let envelopes = E::into_envelopes(events, stream);
            store.store_envelopes(stream, expected, envelopes)
        })
    }
}
