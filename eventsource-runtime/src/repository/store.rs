//! The event store as a repository calls it.

use std::sync::Arc;

use crate::store::EventStore;

/// A repository's event store, shared by its clones.
#[derive(Clone)]
pub(super) struct Store(Arc<dyn EventStore>);

impl Store {
    pub(super) fn new<S: EventStore>(store: S) -> Self {
        Self(Arc::new(store))
    }

    pub(super) fn from_arc(shared: Arc<dyn EventStore>) -> Self {
        Self(shared)
    }

    pub(super) fn shared(&self) -> &Arc<dyn EventStore> {
        &self.0
    }

    /// The store as a trait object. Called through the `Arc`'s own `EventStore` impl,
    /// every call would box its future twice.
    pub(super) fn as_dyn(&self) -> &dyn EventStore {
        &*self.0
    }
}
