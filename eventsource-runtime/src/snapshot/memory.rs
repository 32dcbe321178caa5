//! Snapshots in process memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use super::{Snapshot, SnapshotStore};
use crate::event::StreamId;
use crate::store::StoreError;

/// Snapshots in process memory, for tests and single-process tools. Cheap to clone;
/// clones share the snapshots.
#[derive(Debug, Clone, Default)]
pub struct InMemorySnapshotStore {
    snapshots: Arc<RwLock<HashMap<StreamId, Snapshot>>>,
}

impl InMemorySnapshotStore {
    /// An empty snapshot store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SnapshotStore for InMemorySnapshotStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut snapshots = self
            .snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let newer = snapshots
            .get(&snapshot.stream)
            .is_none_or(|stored| stored.version <= snapshot.version);
        if newer {
            snapshots.insert(snapshot.stream.clone(), snapshot);
        }
        Ok(())
    }

    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let snapshots = self
            .snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(snapshots.get(stream).cloned())
    }

    async fn delete(&self, stream: &StreamId) -> Result<(), StoreError> {
        self.snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(stream);
        Ok(())
    }
}
