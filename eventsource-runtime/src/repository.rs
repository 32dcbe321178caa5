//! Repositories: load an aggregate from its stream (or from its newest snapshot and the
//! later events), save its new events.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::{Aggregate, AggregateRoot, OutOfSequence};
use crate::event::{
    DecodeError, DomainEvent, EventEnvelope, Metadata, NewEvent, Payload, StreamId,
};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::{EventStore, ExpectedVersion, StoreError, VersionConflict};
use crate::telemetry::config::{RepositorySpanNames, RepositoryTelemetry};
#[cfg(feature = "tracing")]
use crate::telemetry::spans;
#[cfg(feature = "tracing")]
use tracing::Instrument as _;

/// What loading or saving an aggregate can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The store failed, or another writer saved first ([`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded into the aggregate's event type.
    #[error("cannot decode stored event {stream} version {version}: {source}")]
    Decode {
        /// The aggregate's stream.
        stream: StreamId,
        /// The undecodable event's version.
        version: u64,
        /// Why: unknown type name, or a payload that does not fit.
        #[source]
        source: DecodeError,
    },
    /// The stream's versions are not the gapless sequence a store guarantees.
    #[error(transparent)]
    OutOfSequence(#[from] OutOfSequence),
    /// A recorded event could not be serialized; nothing was saved.
    #[error("cannot serialize a `{event_type}` event of {stream}: {source}")]
    Encode {
        /// The aggregate's stream.
        stream: StreamId,
        /// The event's type name.
        event_type: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

impl RepositoryError {
    /// The version conflict, when that is what this error is.
    #[must_use]
    pub fn as_conflict(&self) -> Option<&VersionConflict> {
        match self {
            Self::Store(StoreError::Conflict(c)) => Some(c),
            _ => None,
        }
    }
}

/// Loads and saves aggregates of type `A` through an event store, optionally with
/// [snapshots](Self::with_snapshots).
///
/// Cheap to clone; clones share the store.
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    telemetry: RepositoryTelemetry,
    snapshots: Option<Arc<Snapshots<A>>>,
    _aggregate: PhantomData<fn() -> A>,
}

/// A repository's snapshot settings. The state's (de)serialization is kept as function
/// pointers, taken where `A: Serialize + DeserializeOwned` is known, so that loading and
/// saving need no such bound.
struct Snapshots<A> {
    store: Arc<dyn SnapshotStore>,
    every: u64,
    encode: fn(&A) -> Result<Payload, serde_json::Error>,
    decode: fn(&Payload) -> Result<A, serde_json::Error>,
}

fn encode_state<A: Serialize>(state: &A) -> Result<Payload, serde_json::Error> {
    serde_json::to_value(state)
}

fn decode_state<A: DeserializeOwned>(state: &Payload) -> Result<A, serde_json::Error> {
    A::deserialize(state)
}

/// What a snapshot read found.
enum SnapshotRead<A> {
    /// No snapshot (none taken yet, or the snapshot store failed: warned).
    None,
    /// A snapshot that does not deserialize into the state type (warned).
    Unreadable,
    /// The state after the event at `version`.
    Found { version: u64, state: A },
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            telemetry: self.telemetry,
            snapshots: self.snapshots.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store.system_name())
            .field("snapshot_every", &self.snapshots.as_ref().map(|s| s.every))
            .finish()
    }
}

/// Logs a snapshot problem that the repository works around (never an error for the user).
#[cfg(feature = "tracing")]
macro_rules! snapshot_warning {
    ($stream:expr, $error:expr, $message:literal) => {
        tracing::warn!(
            target: spans::TARGET,
            stream = %$stream,
            error = %$error,
            $message
        )
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! snapshot_warning {
    ($stream:expr, $error:expr, $message:literal) => {{
        let _ = (&$stream, &$error);
    }};
}

impl<A: Aggregate> Repository<A> {
    /// A repository over `store` (any [`EventStore`], or an `Arc<dyn EventStore>`).
    pub fn new(store: impl EventStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A repository over a shared store.
    #[must_use]
    pub fn from_arc(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            telemetry: RepositoryTelemetry::default(),
            snapshots: None,
            _aggregate: PhantomData,
        }
    }

    /// Takes snapshots into `store` and loads from them.
    ///
    /// - **Taking**: after a [`save`](Self::save) that brings the stream across a multiple
    ///   of `every` events (from version 9 to 11 with `every = 10`, say), the state at the
    ///   new version is serialized (serde JSON) and saved in `store`, inside the save span.
    /// - **Loading**: [`load`](Self::load) starts from the newest snapshot and replays only
    ///   the events after it; the load span says `eventsource.snapshot.used = true` and
    ///   `eventsource.events.replayed` counts only those events.
    ///
    /// A snapshot is only an optimisation, so snapshot trouble is never an error for the
    /// caller: a snapshot that no longer deserializes into `A` (the state type changed), or
    /// a snapshot store that fails to read, gives a `tracing` warning and a full replay (an
    /// unreadable snapshot is then replaced by one of the replayed state); a snapshot that
    /// cannot be serialized or saved after the events were stored gives a warning, and the
    /// save succeeds (the events are stored). The snapshot store must belong with the
    /// event store: a snapshot of a stream that another store holds would be trusted.
    ///
    /// # Panics
    /// When `every` is 0.
    ///
    /// ```
    /// use eventsource_runtime::prelude::*;
    /// use eventsource_runtime::snapshot::{InMemorySnapshotStore, SnapshotStore};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// pub struct Ticked;
    ///
    /// // The state is serde-serializable: snapshots store it as JSON.
    /// #[derive(Default, Aggregate, Serialize, Deserialize)]
    /// #[aggregate(type = "Clock", events(Ticked))]
    /// pub struct Clock { ticks: u64 }
    /// impl Apply<Ticked> for Clock {
    ///     fn apply(&mut self, _: &Ticked) { self.ticks += 1; }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let snapshots = InMemorySnapshotStore::new();
    /// let clocks = Repository::<Clock>::new(InMemoryEventStore::new())
    ///     .with_snapshots(snapshots.clone(), 10);
    ///
    /// let mut clock = clocks.load("c-1").await?;
    /// for _ in 0..12 {
    ///     clock.record(Ticked);
    /// }
    /// clocks.save(&mut clock).await?; // 0 -> 12 crosses 10: snapshot at version 12
    /// let stream = Repository::<Clock>::stream("c-1");
    /// assert_eq!(snapshots.get(&stream).await?.unwrap().version, 12);
    ///
    /// let mut clock = clocks.load("c-1").await?; // from the snapshot, nothing to replay
    /// clock.record(Ticked);
    /// clocks.save(&mut clock).await?; // 12 -> 13: no new snapshot
    /// let clock = clocks.load("c-1").await?; // snapshot at 12 + 1 event
    /// assert_eq!((clock.version(), clock.state().ticks), (13, 13));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn with_snapshots(mut self, store: impl SnapshotStore, every: u64) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        assert!(every > 0, "a snapshot every 0 events");
        self.snapshots = Some(Arc::new(Snapshots {
            store: Arc::new(store),
            every,
            encode: encode_state::<A>,
            decode: decode_state::<A>,
        }));
        self
    }

    /// The snapshot store and interval set by [`with_snapshots`](Self::with_snapshots).
    #[must_use]
    pub fn snapshots(&self) -> Option<(&Arc<dyn SnapshotStore>, u64)> {
        self.snapshots.as_deref().map(|s| (&s.store, s.every))
    }

    /// The component switch: `false` stops this repository's own spans (the store's are
    /// the store's to switch).
    #[must_use]
    pub fn enable_tracing(mut self, enabled: bool) -> Self {
        self.telemetry.enabled = enabled;
        self
    }

    /// Opts in to a span around each aggregate replay (`eventsource.aggregate.replay`).
    #[must_use]
    pub fn trace_replay(mut self, enabled: bool) -> Self {
        self.telemetry.replay_span = enabled;
        self
    }

    /// Overrides the span names (e.g. `load_aggregate` / `persist_events`).
    #[must_use]
    pub fn with_span_names(mut self, names: RepositorySpanNames) -> Self {
        self.telemetry.names = names;
        self
    }

    /// The repository's telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> &RepositoryTelemetry {
        &self.telemetry
    }

    /// The store behind this repository.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The stream of the aggregate `id`.
    pub fn stream(id: impl Into<String>) -> StreamId {
        StreamId::new(A::TYPE, id)
    }

    /// Loads the aggregate `id` by replaying its stream, or, with
    /// [snapshots](Self::with_snapshots), from its newest snapshot and the events after it.
    ///
    /// An aggregate with no event comes back at version 0 in its default state, ready for
    /// its first command; use [`exists`](Self::exists) to tell the two apart.
    ///
    /// # Errors
    /// [`RepositoryError::Decode`] naming the stream and version of an event that cannot
    /// be decoded (unknown type, payload that does not fit), the store's errors, and
    /// [`RepositoryError::OutOfSequence`] if the store broke its versioning guarantee.
    /// Snapshot trouble is never an error (see [`with_snapshots`](Self::with_snapshots)).
    pub async fn load(&self, id: impl Into<String>) -> Result<AggregateRoot<A>, RepositoryError> {
        let id = id.into();
        #[cfg(feature = "tracing")]
        {
            let span = spans::repository_load(&self.telemetry, &Self::stream(id.as_str()));
            let result = self.load_root(id).instrument(span.clone()).await;
            match &result {
                Ok(loaded) => spans::repository_loaded(
                    &span,
                    loaded.replayed,
                    loaded.root.version(),
                    loaded.snapshot_used,
                ),
                Err(e) => spans::record_error(&span, "RepositoryError", e),
            }
            result.map(|loaded| loaded.root)
        }
        #[cfg(not(feature = "tracing"))]
        self.load_root(id).await.map(|loaded| loaded.root)
    }

    async fn load_root(&self, id: String) -> Result<Loaded<A>, RepositoryError> {
        let Some(snapshots) = self.snapshots.as_deref() else {
            return self.replay_stream(AggregateRoot::new(id), false).await;
        };
        let stream = Self::stream(id.as_str());
        match read_snapshot(snapshots, &stream).await {
            SnapshotRead::Found { version, state } => {
                let root = AggregateRoot::from_snapshot(id, version, state);
                self.replay_stream(root, true).await
            }
            SnapshotRead::None => self.replay_stream(AggregateRoot::new(id), false).await,
            SnapshotRead::Unreadable => {
                let loaded = self.replay_stream(AggregateRoot::new(id), false).await?;
                // Replace it, so the next loads do not warn and replay in full again.
                if loaded.root.version() > 0 {
                    take_snapshot(snapshots, &loaded.root).await;
                }
                Ok(loaded)
            }
        }
    }

    /// Applies the stored events after the root's version.
    async fn replay_stream(
        &self,
        mut root: AggregateRoot<A>,
        snapshot_used: bool,
    ) -> Result<Loaded<A>, RepositoryError> {
        let stored = self.store.load(root.stream(), root.version() + 1).await?;
        #[cfg(feature = "tracing")]
        let _replay =
            spans::aggregate_replay(&self.telemetry, root.stream(), stored.len()).entered();
        for envelope in &stored {
            let event = decode::<A>(envelope)?;
            root.replay_one(envelope.version, &event)?;
        }
        Ok(Loaded {
            root,
            replayed: stored.len(),
            snapshot_used,
        })
    }

    /// Whether the aggregate `id` has at least one event.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn exists(&self, id: impl Into<String>) -> Result<bool, RepositoryError> {
        let stream = Self::stream(id);
        let check = async { Ok(self.store.stream_version(&stream).await? > 0) };
        #[cfg(feature = "tracing")]
        {
            let span = spans::repository_exists(&self.telemetry, &stream);
            let result = check.instrument(span.clone()).await;
            if let Err(e) = &result {
                spans::record_error(&span, "RepositoryError", e);
            }
            result
        }
        #[cfg(not(feature = "tracing"))]
        check.await
    }

    /// Appends the root's uncommitted events, expecting the stream to be at the version the
    /// root was loaded at, and returns them as stored.
    ///
    /// On success the root has no uncommitted event left; on failure (a
    /// [`VersionConflict`] included) it keeps them and nothing was appended.
    ///
    /// # Errors
    /// See [`RepositoryError`].
    pub async fn save(
        &self,
        root: &mut AggregateRoot<A>,
    ) -> Result<Vec<EventEnvelope>, RepositoryError> {
        self.save_with_metadata(root, &Metadata::new()).await
    }

    /// As [`save`](Self::save), storing `metadata` (correlation, causation, ...) with each
    /// event.
    ///
    /// # Errors
    /// See [`RepositoryError`].
    pub async fn save_with_metadata(
        &self,
        root: &mut AggregateRoot<A>,
        metadata: &Metadata,
    ) -> Result<Vec<EventEnvelope>, RepositoryError> {
        if root.uncommitted().is_empty() {
            return Ok(Vec::new());
        }
        let events = root
            .uncommitted()
            .iter()
            .map(|event| {
                NewEvent::from_event(event)
                    .map(|new| new.with_metadata(metadata.clone()))
                    .map_err(|source| RepositoryError::Encode {
                        stream: root.stream().clone(),
                        event_type: event.event_type(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let previous = root.persisted_version();
        let expected = ExpectedVersion::from_version(previous);
        #[cfg(feature = "tracing")]
        let span = spans::repository_save(
            &self.telemetry,
            root.stream(),
            expected,
            root.uncommitted().len(),
        );
        let append = self.store.append(root.stream(), expected, events);
        #[cfg(feature = "tracing")]
        let appended = {
            let result = append.instrument(span.clone()).await;
            match &result {
                Ok(appended) => spans::record_version(&span, appended.version),
                Err(e) => spans::record_error(&span, "StoreError", e),
            }
            result?
        };
        #[cfg(not(feature = "tracing"))]
        let appended = append.await?;
        root.take_uncommitted();
        if let Some(snapshots) = self.snapshots.as_deref() {
            // A snapshot when the save crossed a multiple of `every`.
            if appended.version / snapshots.every > previous / snapshots.every {
                let take = take_snapshot(snapshots, root);
                #[cfg(feature = "tracing")]
                take.instrument(span.clone()).await;
                #[cfg(not(feature = "tracing"))]
                take.await;
            }
        }
        Ok(appended.events)
    }
}

/// A loaded root, and how it was loaded (for the load span).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
struct Loaded<A: Aggregate> {
    root: AggregateRoot<A>,
    /// The events applied after the snapshot (all of them without one).
    replayed: usize,
    snapshot_used: bool,
}

/// The newest snapshot of `stream`, decoded; trouble is warned about and reads as none.
async fn read_snapshot<A>(snapshots: &Snapshots<A>, stream: &StreamId) -> SnapshotRead<A> {
    match snapshots.store.get(stream).await {
        Ok(None) => SnapshotRead::None,
        Ok(Some(snapshot)) => match (snapshots.decode)(&snapshot.state) {
            Ok(state) => SnapshotRead::Found {
                version: snapshot.version,
                state,
            },
            Err(error) => {
                snapshot_warning!(
                    stream,
                    error,
                    "ignoring a snapshot that does not deserialize into the aggregate's state (did the state type change?); replaying all events"
                );
                SnapshotRead::Unreadable
            }
        },
        Err(error) => {
            snapshot_warning!(
                stream,
                error,
                "the snapshot store failed; replaying all events"
            );
            SnapshotRead::None
        }
    }
}

/// Saves the root's state as a snapshot; trouble is warned about, never returned.
async fn take_snapshot<A: Aggregate>(snapshots: &Snapshots<A>, root: &AggregateRoot<A>) {
    let state = match (snapshots.encode)(root.state()) {
        Ok(state) => state,
        Err(error) => {
            snapshot_warning!(
                root.stream(),
                error,
                "cannot serialize the aggregate's state; no snapshot taken"
            );
            return;
        }
    };
    let snapshot = Snapshot {
        stream: root.stream().clone(),
        version: root.version(),
        state,
        taken_at: chrono::Utc::now(),
    };
    if let Err(error) = snapshots.store.save(snapshot).await {
        snapshot_warning!(
            root.stream(),
            error,
            "the snapshot store failed to save a snapshot; the events are stored"
        );
    }
}

fn decode<A: Aggregate>(envelope: &EventEnvelope) -> Result<A::Event, RepositoryError> {
    A::Event::from_payload(&envelope.event_type, &envelope.payload).map_err(|source| {
        RepositoryError::Decode {
            stream: envelope.stream.clone(),
            version: envelope.version,
            source,
        }
    })
}
