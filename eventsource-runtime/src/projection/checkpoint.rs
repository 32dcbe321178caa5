//! Checkpoints: how far each projection got in the store's global order, and the lease
//! that keeps two runners from processing the same projection at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::store::StoreError;

/// Held while a runner owns a projection; dropping it (or [`release`](Self::release))
/// lets another runner take over.
#[async_trait]
pub trait ProjectionLease: Send + Sync {
    /// Gives the projection up now (instead of on drop).
    async fn release(self: Box<Self>);
}

/// Where projection runners keep their checkpoints.
///
/// A checkpoint is the global position of the last event a projection has handled
/// successfully (0: none yet); the runner resumes after it.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The projection's checkpoint (0 when it has none).
    ///
    /// # Errors
    /// The backend's errors.
    async fn load(&self, projection: &str) -> Result<u64, StoreError>;

    /// Records that the projection handled everything up to `position`.
    ///
    /// # Errors
    /// The backend's errors.
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError>;

    /// Takes the projection for this runner, or `None` when another runner holds it.
    ///
    /// # Errors
    /// The backend's errors.
    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError>;
}

/// Checkpoints in process memory; leases exclude runners of this process only.
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpointStore {
    positions: Arc<Mutex<HashMap<String, u64>>>,
    held: Arc<Mutex<HashSet<String>>>,
}

impl InMemoryCheckpointStore {
    /// An empty checkpoint store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for InMemoryCheckpointStore {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(positions.get(projection).copied().unwrap_or(0))
    }

    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(projection.to_owned(), position);
        Ok(())
    }

    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if !held.insert(projection.to_owned()) {
            return Ok(None);
        }
        Ok(Some(Box::new(InProcessLease {
            held: Arc::clone(&self.held),
            projection: projection.to_owned(),
        })))
    }
}

/// A lease on a projection within one process.
#[derive(Debug)]
pub struct InProcessLease {
    held: Arc<Mutex<HashSet<String>>>,
    projection: String,
}

impl Drop for InProcessLease {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.projection);
    }
}

#[async_trait]
impl ProjectionLease for InProcessLease {
    async fn release(self: Box<Self>) {}
}
