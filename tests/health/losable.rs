//! A checkpoint store whose lease the test takes away, as a PostgreSQL session that ends
//! takes its lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{
    CheckpointStore, InMemoryCheckpointStore, ParkedEvent, ProjectionLease,
};

/// An in-memory checkpoint store whose lease the test takes away (as a PostgreSQL session
/// that ends takes its lock).
#[derive(Clone, Default)]
pub struct Losable {
    inner: InMemoryCheckpointStore,
    /// Set: the lease is lost.
    pub lost: Arc<AtomicBool>,
}

struct LosableLease(Arc<AtomicBool>, Box<dyn ProjectionLease>);

#[eventsource_runtime::async_trait]
impl ProjectionLease for LosableLease {
    fn is_held(&self) -> bool {
        !self.0.load(Ordering::SeqCst)
    }
    async fn release(self: Box<Self>) {
        self.1.release().await;
    }
}

#[eventsource_runtime::async_trait]
impl CheckpointStore for Losable {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        self.inner.load(projection).await
    }
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.inner.save(projection, position).await
    }
    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.inner.reset(projection, position).await
    }
    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        let lease = self.inner.try_acquire(projection).await?;
        Ok(lease.map(|inner| {
            Box::new(LosableLease(Arc::clone(&self.lost), inner)) as Box<dyn ProjectionLease>
        }))
    }
    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        self.inner.park(projection, event).await
    }
    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.parked(projection).await
    }
    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.inner.unpark(projection, position).await
    }
}
