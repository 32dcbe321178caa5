//! The event store as a repository calls it.

use std::sync::Arc;

use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::store::at_once::AtOnce;
use crate::store::{AppendResult, EventStore, ExpectedVersion, StoreError};

/// A repository's event store. Through `dyn EventStore` every call boxes its future; a
/// store that answers at once ([`AtOnce`]) is called directly instead, without a future
/// (the same steps, with the same spans).
#[derive(Clone)]
pub(super) struct Store {
    shared: Arc<dyn EventStore>,
    at_once: Option<AtOnce>,
}

impl Store {
    /// `store`, called directly if it answers at once.
    pub(super) fn new<S: EventStore>(store: S) -> Self {
        let at_once = AtOnce::of(&store);
        Self {
            shared: Arc::new(store),
            at_once,
        }
    }

    /// A shared store, always called through its trait object.
    pub(super) fn from_arc(shared: Arc<dyn EventStore>) -> Self {
        Self {
            shared,
            at_once: None,
        }
    }

    /// The store, if it answers at once.
    pub(super) fn at_once(&self) -> Option<&AtOnce> {
        self.at_once.as_ref()
    }

    pub(super) fn shared(&self) -> &Arc<dyn EventStore> {
        &self.shared
    }

    /// The store as a trait object. Called through the `Arc`'s own `EventStore` impl,
    /// every call would box its future twice.
    pub(super) fn as_dyn(&self) -> &dyn EventStore {
        &*self.shared
    }

    /// As [`EventStore::load`].
    pub(super) async fn load(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        match &self.at_once {
            Some(store) => store.load(stream, from_version),
            None => self.as_dyn().load(stream, from_version).await,
        }
    }

    /// As [`EventStore::append`].
    pub(super) async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        match &self.at_once {
            Some(store) => store.append(stream, expected, events),
            None => self.as_dyn().append(stream, expected, events).await,
        }
    }
}
