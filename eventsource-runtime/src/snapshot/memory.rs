//! Snapshots in process memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use super::instrument::{self, SnapshotOperation};
use super::{Snapshot, SnapshotStore};
use crate::event::StreamId;
use crate::store::{StoreError, StoreTelemetry, WithStoreTelemetry};

/// `db.system.name` of the in-memory snapshot store.
const SYSTEM: &str = "in_memory";

/// Snapshots in process memory, for tests and single-process tools. Cheap to clone;
/// clones share the snapshots.
///
/// Spans: `eventsource.snapshot_store.{save,get,delete,exists}`, CLIENT, with the aggregate
/// id and type, `eventsource.version` and `db.system.name` = `in_memory`;
/// [`enable_tracing(false)`](Self::enable_tracing) stops them.
///
/// ```
/// use eventsource_runtime::event::StreamId;
/// use eventsource_runtime::snapshot::{InMemorySnapshotStore, Snapshot, SnapshotStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let snapshots = InMemorySnapshotStore::new();
/// let stream = StreamId::new("Order", "o-1");
/// let at = |version| Snapshot {
///     stream: stream.clone(),
///     version,
///     state: serde_json::json!({ "lines": version }).into(),
///     schema_version: 1,
///     taken_at: chrono::Utc::now(),
/// };
/// snapshots.save(at(20)).await?;
/// snapshots.save(at(10)).await?; // older: ignored
/// assert_eq!(snapshots.get(&stream).await?.unwrap().version, 20);
/// snapshots.delete(&stream).await?;
/// assert!(!snapshots.exists(&stream).await?);
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct InMemorySnapshotStore {
    snapshots: Arc<RwLock<HashMap<StreamId, Snapshot>>>,
    telemetry: Arc<StoreTelemetry>,
}

impl Default for InMemorySnapshotStore {
    fn default() -> Self {
        Self {
            snapshots: Arc::default(),
            telemetry: Arc::new(StoreTelemetry::new(SYSTEM)),
        }
    }
}

impl InMemorySnapshotStore {
    /// An empty snapshot store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many snapshots the store holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no snapshot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // Nothing panics while the lock is held, so a poisoned map is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<StreamId, Snapshot>> {
        self.snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<StreamId, Snapshot>> {
        self.snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl WithStoreTelemetry for InMemorySnapshotStore {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut StoreTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

#[async_trait]
impl SnapshotStore for InMemorySnapshotStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let stream = snapshot.stream.clone();
        let version = snapshot.version;
        instrument::run(
            &self.telemetry,
            SnapshotOperation::Save,
            &stream,
            Some(version),
            async move {
                let mut snapshots = self.write();
                let newer = snapshots
                    .get(&snapshot.stream)
                    .is_none_or(|stored| stored.version <= snapshot.version);
                if newer {
                    snapshots.insert(snapshot.stream.clone(), snapshot);
                }
                Ok(())
            },
        )
        .await
    }

    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        instrument::run(
            &self.telemetry,
            SnapshotOperation::Get,
            stream,
            None,
            async { Ok(self.read().get(stream).cloned()) },
        )
        .await
    }

    async fn delete(&self, stream: &StreamId) -> Result<(), StoreError> {
        instrument::run(
            &self.telemetry,
            SnapshotOperation::Delete,
            stream,
            None,
            async {
                self.write().remove(stream);
                Ok(())
            },
        )
        .await
    }

    async fn exists(&self, stream: &StreamId) -> Result<bool, StoreError> {
        instrument::run(
            &self.telemetry,
            SnapshotOperation::Exists,
            stream,
            None,
            async { Ok(self.read().contains_key(stream)) },
        )
        .await
    }
}
