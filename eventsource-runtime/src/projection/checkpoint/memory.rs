//! Checkpoints, parked events and leases in process memory: the in-memory store, and the
//! lease the SQLite store shares.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{
    CheckpointRecord, CheckpointStore, LeaseHolder, ParkedEvent, ProjectionLease, RunnerStop,
};
use crate::store::StoreError;

/// Checkpoints and parked events in process memory; leases exclude runners of this
/// process only.
///
/// ```
/// use eventsource_runtime::projection::checkpoint::{
///     CheckpointStore, InMemoryCheckpointStore, ParkedEvent,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let checkpoints = InMemoryCheckpointStore::new();
/// checkpoints.save("orders", 9).await?;
/// checkpoints.save("orders", 7).await?; // late: never moves it back
/// assert_eq!(checkpoints.load("orders").await?, 9);
/// checkpoints.reset("orders", 0).await?; // a rebuild does
/// assert_eq!(checkpoints.load("orders").await?, 0);
/// checkpoints.park("orders", &ParkedEvent::new(10, "unreadable")).await?;
/// assert_eq!(checkpoints.parked("orders").await?[0].position, 10);
/// assert!(checkpoints.unpark("orders", 10).await?);
/// assert!(checkpoints.parked("orders").await?.is_empty());
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpointStore {
    positions: Arc<Mutex<HashMap<String, u64>>>,
    held: Arc<Mutex<HashSet<String>>>,
    parked: Arc<Mutex<HashMap<String, BTreeMap<u64, ParkedEvent>>>>,
    /// The parked events whose retry was requested: (projection, position).
    retry_requested: Arc<Mutex<HashSet<(String, u64)>>>,
    /// Why each stopped projection's runner stopped.
    stops: Arc<Mutex<HashMap<String, RunnerStop>>>,
}

impl InMemoryCheckpointStore {
    /// An empty checkpoint store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    // Nothing panics while these locks are held, so a poisoned map is still consistent.
    fn parked_events(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<u64, ParkedEvent>>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunnerStop>> {
        self.stops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn requested(&self) -> std::sync::MutexGuard<'_, HashSet<(String, u64)>> {
        self.retry_requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let saved = positions.entry(projection.to_owned()).or_default();
        *saved = (*saved).max(position);
        Ok(())
    }

    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError> {
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

    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        self.parked_events()
            .entry(projection.to_owned())
            .or_default()
            .insert(event.position, event.clone());
        self.requested()
            .remove(&(projection.to_owned(), event.position));
        Ok(())
    }

    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let parked = self.parked_events();
        Ok(parked
            .get(projection)
            .map(|events| events.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.requested().remove(&(projection.to_owned(), position));
        let mut parked = self.parked_events();
        Ok(parked
            .get_mut(projection)
            .and_then(|events| events.remove(&position))
            .is_some())
    }

    async fn request_retry(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        let parked = self
            .parked_events()
            .get(projection)
            .is_some_and(|events| events.contains_key(&position));
        if parked {
            self.requested().insert((projection.to_owned(), position));
        }
        Ok(parked)
    }

    async fn retry_requests(&self, projection: &str) -> Result<Vec<u64>, StoreError> {
        let mut positions: Vec<u64> = self
            .requested()
            .iter()
            .filter(|(name, _)| name == projection)
            .map(|(_, position)| *position)
            .collect();
        positions.sort_unstable();
        Ok(positions)
    }

    async fn forget(&self, projection: &str) -> Result<bool, StoreError> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(projection);
        let parked = self.parked_events().remove(projection);
        self.requested().retain(|(name, _)| name != projection);
        self.stops().remove(projection);
        Ok(positions.is_some() || parked.is_some_and(|events| !events.is_empty()))
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stops = self.stops();
        let mut records: Vec<CheckpointRecord> = positions
            .iter()
            .map(|(name, &position)| {
                CheckpointRecord::new(name.clone(), position, None)
                    .with_stop(stops.get(name).cloned())
            })
            .collect();
        records.sort_by(|a, b| a.projection.cmp(&b.projection));
        Ok(records)
    }

    async fn parked_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let parked = self.parked_events();
        Ok(parked
            .iter()
            .filter(|(_, events)| !events.is_empty())
            .map(|(name, events)| (name.clone(), events.len() as u64))
            .collect())
    }

    async fn record_stop(&self, projection: &str, stop: &RunnerStop) -> Result<(), StoreError> {
        // Locked in `checkpoints`' order: positions, then stops.
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        positions.entry(projection.to_owned()).or_default();
        self.stops().insert(projection.to_owned(), stop.clone());
        Ok(())
    }

    async fn clear_stop(&self, projection: &str) -> Result<(), StoreError> {
        self.stops().remove(projection);
        Ok(())
    }

    async fn lease_holder(&self, projection: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(held.contains(projection).then(LeaseHolder::this_process))
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
