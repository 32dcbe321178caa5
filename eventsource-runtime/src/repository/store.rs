//! The event store as a repository calls it.

use std::any::Any;
use std::sync::Arc;

use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::store::backend;
use crate::store::{AppendResult, EventStore, ExpectedVersion, InMemoryEventStore, StoreError};

/// A repository's event store. Through `dyn EventStore` every call boxes its future; the
/// in-memory store, whose calls are over in a few hundred instructions and never wait, is
/// called directly instead, without a future (the same code, with the same spans).
#[derive(Clone)]
pub(super) struct Store {
    shared: Arc<dyn EventStore>,
    in_memory: Option<InMemoryEventStore>,
}

impl Store {
    /// `store`, called directly if it is an [`InMemoryEventStore`].
    pub(super) fn new<S: EventStore>(store: S) -> Self {
        let in_memory = (&store as &dyn Any)
            .downcast_ref::<InMemoryEventStore>()
            .cloned();
        Self {
            shared: Arc::new(store),
            in_memory,
        }
    }

    /// A shared store, always called through its trait object.
    pub(super) fn from_arc(shared: Arc<dyn EventStore>) -> Self {
        Self {
            shared,
            in_memory: None,
        }
    }

    pub(super) fn in_memory(&self) -> Option<&InMemoryEventStore> {
        self.in_memory.as_ref()
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
        match &self.in_memory {
            Some(store) => backend::load_at_once(store, stream, from_version),
            None => self.as_dyn().load(stream, from_version).await,
        }
    }

    /// As [`EventStore::load_page`]; the in-memory store's whole rest of the stream, which
    /// it holds anyway.
    pub(super) async fn load_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        match &self.in_memory {
            Some(store) => backend::load_at_once(store, stream, from_version),
            None => self.as_dyn().load_page(stream, from_version, limit).await,
        }
    }

    /// As [`EventStore::append`].
    pub(super) async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        match &self.in_memory {
            Some(store) => backend::append_at_once(store, stream, expected, events),
            None => self.as_dyn().append(stream, expected, events).await,
        }
    }
}
