//! Repositories: load an aggregate from its stream, save its new events.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::aggregate::{Aggregate, AggregateRoot, OutOfSequence};
use crate::event::{DecodeError, DomainEvent, EventEnvelope, Metadata, NewEvent, StreamId};
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

/// Loads and saves aggregates of type `A` through an event store.
///
/// Cheap to clone; clones share the store.
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    telemetry: RepositoryTelemetry,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            telemetry: self.telemetry,
            _aggregate: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store.system_name())
            .finish()
    }
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
            _aggregate: PhantomData,
        }
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

    /// Loads the aggregate `id` by replaying its stream.
    ///
    /// An aggregate with no event comes back at version 0 in its default state, ready for
    /// its first command; use [`exists`](Self::exists) to tell the two apart.
    ///
    /// # Errors
    /// [`RepositoryError::Decode`] naming the stream and version of an event that cannot
    /// be decoded (unknown type, payload that does not fit), the store's errors, and
    /// [`RepositoryError::OutOfSequence`] if the store broke its versioning guarantee.
    pub async fn load(&self, id: impl Into<String>) -> Result<AggregateRoot<A>, RepositoryError> {
        let root = AggregateRoot::<A>::new(id);
        #[cfg(feature = "tracing")]
        {
            let span = spans::repository_load(&self.telemetry, root.stream());
            let result = self.replay_stream(root).instrument(span.clone()).await;
            match &result {
                Ok(root) => {
                    spans::repository_loaded(&span, as_usize(root.version()), root.version(), false)
                }
                Err(e) => spans::record_error(&span, "RepositoryError", e),
            }
            result
        }
        #[cfg(not(feature = "tracing"))]
        self.replay_stream(root).await
    }

    async fn replay_stream(
        &self,
        mut root: AggregateRoot<A>,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let stored = self.store.load(root.stream(), 1).await?;
        #[cfg(feature = "tracing")]
        let _replay =
            spans::aggregate_replay(&self.telemetry, root.stream(), stored.len()).entered();
        for envelope in &stored {
            let event = decode::<A>(envelope)?;
            root.replay_one(envelope.version, &event)?;
        }
        Ok(root)
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
        let expected = ExpectedVersion::from_version(root.persisted_version());
        let append = self.store.append(root.stream(), expected, events);
        #[cfg(feature = "tracing")]
        let appended = {
            let span = spans::repository_save(
                &self.telemetry,
                root.stream(),
                expected,
                root.uncommitted().len(),
            );
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
        Ok(appended.events)
    }
}

#[cfg(feature = "tracing")]
fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
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
