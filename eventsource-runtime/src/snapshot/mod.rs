//! Snapshots: an aggregate's serialized state at a version, so a load can start there and
//! replay only the later events.
//!
//! A snapshot is an optimisation, never the source of truth: one that cannot be read (the
//! state type changed since it was taken), or that was taken at another
//! [`SNAPSHOT_VERSION`](crate::aggregate::Aggregate::SNAPSHOT_VERSION) than the aggregate's,
//! is ignored with a warning and the aggregate is rebuilt from all its events.
//!
//! [`Repository::with_snapshots`](crate::repository::Repository::with_snapshots) takes
//! them and loads from them; every implementation wraps its operations in
//! [`instrument::run`] for the contract's spans. The [`InMemorySnapshotStore`] is here; the
//! SQLite and PostgreSQL snapshot stores live in their databases' modules.

pub mod instrument;
mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::event::{Payload, StreamId};
use crate::store::StoreError;

pub use memory::InMemorySnapshotStore;

/// An aggregate's state after the event at `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The aggregate's stream.
    pub stream: StreamId,
    /// The version of the last event the state includes.
    pub version: u64,
    /// The state, serialized.
    pub state: Payload,
    /// The schema version of the state's serialized form: the aggregate's
    /// [`SNAPSHOT_VERSION`](crate::aggregate::Aggregate::SNAPSHOT_VERSION) when it was taken.
    /// A repository ignores a snapshot of another version than its aggregate's.
    pub schema_version: u32,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
}

/// Where snapshots are kept: at most one (the newest) per stream.
#[async_trait]
#[auto_impl::auto_impl(Arc)]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Stores `snapshot`, replacing an older one of the same stream (a snapshot older than
    /// the one stored is ignored).
    ///
    /// # Errors
    /// The backend's errors.
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError>;

    /// The newest snapshot of `stream`.
    ///
    /// # Errors
    /// The backend's errors.
    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Removes the snapshot of `stream`, if any.
    ///
    /// # Errors
    /// The backend's errors.
    async fn delete(&self, stream: &StreamId) -> Result<(), StoreError>;

    /// Whether `stream` has a snapshot.
    ///
    /// # Errors
    /// The backend's errors.
    async fn exists(&self, stream: &StreamId) -> Result<bool, StoreError> {
        Ok(self.get(stream).await?.is_some())
    }
}
