//! A repository's snapshots: reading the newest one on load, taking one after a save that
//! crosses a multiple of the interval. Snapshot trouble is warned about, never returned.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::{Payload, StreamId};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// A repository's snapshot settings. The state's (de)serialization is kept as function
/// pointers, taken where `A: Serialize + DeserializeOwned` is known, so that loading and
/// saving need no such bound.
pub(super) struct Snapshots<A> {
    pub(super) store: Arc<dyn SnapshotStore>,
    pub(super) every: u64,
    encode: fn(&A) -> Result<Payload, serde_json::Error>,
    decode: fn(&Payload) -> Result<A, serde_json::Error>,
}

impl<A: Serialize + DeserializeOwned> Snapshots<A> {
    pub(super) fn new(store: Arc<dyn SnapshotStore>, every: u64) -> Self {
        Self {
            store,
            every,
            encode: |state| Payload::from_serialize(state),
            decode: Payload::decode,
        }
    }
}

/// What a snapshot read found.
pub(super) enum SnapshotRead<A> {
    /// No snapshot (none taken yet, or the snapshot store failed: warned).
    None,
    /// A snapshot of another [`Aggregate::SNAPSHOT_VERSION`], or one that does not
    /// deserialize into the state type (warned): the replayed state replaces it.
    Unreadable,
    /// The state after the event at `version`.
    Found { version: u64, state: A },
}

impl<A: Aggregate> Snapshots<A> {
    /// The newest snapshot of `stream`, decoded; trouble is warned about and reads as none,
    /// a snapshot of another schema version than `A::SNAPSHOT_VERSION` as unreadable.
    pub(super) async fn read(&self, stream: &StreamId) -> SnapshotRead<A> {
        match (*self.store).get(stream).await {
            Ok(None) => SnapshotRead::None,
            Ok(Some(snapshot)) if snapshot.schema_version != A::SNAPSHOT_VERSION => {
                log_warn!(
                    stream = %stream,
                    snapshot_version = snapshot.schema_version,
                    aggregate_version = A::SNAPSHOT_VERSION,
                    "ignoring a snapshot of schema version {} (the aggregate's SNAPSHOT_VERSION is {}); the aggregate is replayed from its events",
                    snapshot.schema_version,
                    A::SNAPSHOT_VERSION
                );
                SnapshotRead::Unreadable
            }
            Ok(Some(snapshot)) => match (self.decode)(&snapshot.state) {
                Ok(state) => SnapshotRead::Found {
                    version: snapshot.version,
                    state,
                },
                Err(error) => {
                    log_warn!(
                        stream = %stream,
                        error = %Chain(&error),
                        "ignoring a snapshot that does not deserialize into the aggregate's state (did the state type change?); replaying all events"
                    );
                    SnapshotRead::Unreadable
                }
            },
            Err(error) => {
                log_warn!(
                    stream = %stream,
                    error = %Chain(&error),
                    "the snapshot store failed; replaying all events"
                );
                SnapshotRead::None
            }
        }
    }

    /// Saves the root's state as a snapshot; trouble is warned about, never returned.
    pub(super) async fn take(&self, root: &AggregateRoot<A>) {
        let state = match (self.encode)(root.state()) {
            Ok(state) => state,
            Err(error) => {
                log_warn!(
                    stream = %root.stream(),
                    error = %Chain(&error),
                    "cannot serialize the aggregate's state; no snapshot taken"
                );
                return;
            }
        };
        let snapshot = Snapshot {
            stream: root.stream().clone(),
            version: root.version(),
            state,
            schema_version: A::SNAPSHOT_VERSION,
            taken_at: chrono::Utc::now(),
        };
        if let Err(error) = (*self.store).save(snapshot).await {
            log_warn!(
                stream = %root.stream(),
                error = %Chain(&error),
                "the snapshot store failed to save a snapshot; the events are stored"
            );
        }
    }
}
