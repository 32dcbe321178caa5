//! Repositories: load an aggregate from its stream (or from its newest snapshot and the
//! later events), save its new events.

mod cache;
mod error;
mod instrument;
mod loaded;
mod settings;
mod snapshots;
mod store;
mod sync_steps;

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::{Aggregate, AggregateRoot, Home};
use crate::event::{DomainEvent, EventEnvelope, Metadata, NewEvent, StreamId};
use crate::snapshot::SnapshotStore;
use crate::store::outgoing::Outgoing;
use crate::store::{AppendResult, EventStore, ExpectedVersion, StoreError};
use crate::telemetry::otel::Span;
use cache::StateCache;
pub use error::RepositoryError;
use loaded::{LoadReport, Loaded, PagedReplay};
pub use settings::{RepositorySpanNames, RepositoryTelemetry};
use snapshots::{SnapshotRead, Snapshots};
use store::Store;

/// How many events a load reads and applies at a time: a long stream is never held whole,
/// only a page of it (see [`EventStore::load_pages`]); the next may be read meanwhile.
pub const LOAD_PAGE_EVENTS: usize = 1_000;

/// How many aggregates a repository caches by default (see [`Repository::with_cache`]).
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Loads and saves aggregates of type `A` through an event store, optionally with
/// [snapshots](Self::with_snapshots).
///
/// Cheap to clone; clones share the store.
pub struct Repository<A> {
    store: Store,
    telemetry: RepositoryTelemetry,
    snapshots: Option<Arc<Snapshots<A>>>,
    cache: Option<Arc<StateCache<A>>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            telemetry: self.telemetry,
            snapshots: self.snapshots.clone(),
            cache: self.cache.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store.as_dyn().system_name())
            .field("snapshot_every", &self.snapshots.as_ref().map(|s| s.every))
            .field("cache_capacity", &self.cache.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

impl<A: Aggregate> Repository<A> {
    /// A repository over `store` (any [`EventStore`], or an `Arc<dyn EventStore>`).
    ///
    /// A store that answers at once, as the
    /// [`InMemoryEventStore`](crate::store::InMemoryEventStore) does, is called directly
    /// when given here: the same steps and spans, without the boxed future of a
    /// `dyn EventStore` call. Given through [`from_arc`](Self::from_arc), every store is
    /// called through its trait object.
    pub fn new(store: impl EventStore) -> Self {
        Self::with_store(Store::new(store))
    }

    /// A repository over a shared store.
    #[must_use]
    pub fn from_arc(store: Arc<dyn EventStore>) -> Self {
        Self::with_store(Store::from_arc(store))
    }

    fn with_store(store: Store) -> Self {
        Self {
            store,
            telemetry: RepositoryTelemetry::default(),
            snapshots: None,
            cache: Some(Arc::new(StateCache::new(DEFAULT_CACHE_CAPACITY))),
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
    /// caller: a snapshot of another [`A::SNAPSHOT_VERSION`](Aggregate::SNAPSHOT_VERSION) or
    /// that no longer deserializes into `A`, or a snapshot store that fails to read, gives a
    /// `tracing` warning and a full replay (such a snapshot is then replaced by one of the
    /// replayed state); a snapshot that cannot be serialized or saved after the events were
    /// stored gives a warning, and the save succeeds. The snapshot store must belong with the
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
        self.snapshots = Some(Arc::new(Snapshots::new(Arc::new(store), every)));
        self
    }

    /// Keeps the state and version of up to `capacity` recently used aggregates in memory,
    /// so that loading one reads and applies only the events stored after its cached
    /// version instead of its whole stream; 0 keeps none.
    ///
    /// **On by default**, with room for [`DEFAULT_CACHE_CAPACITY`] aggregates.
    ///
    /// - **Always current**: a load still asks the store for the events after the cached
    ///   version, so what other writers (other processes included) appended meanwhile is
    ///   applied before the command decides; a save racing another writer meets the usual
    ///   [`VersionConflict`](crate::store::VersionConflict), and the next load catches up.
    ///   Streams are append-only, so a cached state is never wrong, only possibly behind.
    /// - **Nothing copied**: a load takes the aggregate out of the cache, and the
    ///   [`AggregateRoot`] comes back when it is dropped with nothing uncommitted (after its
    ///   save, or unchanged), so the state need not be `Clone`. A root still in use (held in
    ///   a [`CommandOutcome`](crate::command::CommandOutcome), say) is not in the cache: a
    ///   load meanwhile reads the stream. A root whose state was changed other than by
    ///   recording and saving ([`AggregateRoot::replay_one`],
    ///   [`AggregateRoot::take_uncommitted`]) does not come back.
    /// - **Memory**: at most `capacity` states (and their ids), the least recently used
    ///   dropped first (two generations of `capacity / 2`).
    /// - Commands with an id ([`CommandService::execute_once`](crate::command::CommandService::execute_once))
    ///   read the stream as without a cache (the ids are searched in the events), and
    ///   refresh the cache.
    /// - With [snapshots](Self::with_snapshots) too, the cache is asked first; snapshots
    ///   serve the aggregates it does not hold (a cold start, an evicted aggregate).
    ///
    /// ```
    /// use eventsource_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// pub struct Ticked;
    ///
    /// #[derive(Default, Aggregate)] // no `Clone` needed
    /// #[aggregate(type = "Clock", events(Ticked))]
    /// pub struct Clock { ticks: u64 }
    /// impl Apply<Ticked> for Clock {
    ///     fn apply(&mut self, _: &Ticked) { self.ticks += 1; }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryEventStore::new();
    /// let clocks = Repository::<Clock>::new(store.clone()).with_cache(10_000);
    /// let mut clock = clocks.load("c-1").await?;
    /// clock.record(Ticked);
    /// clocks.save(&mut clock).await?;
    /// drop(clock); // back in the cache, at version 1
    /// assert_eq!(clocks.cached(), 1);
    ///
    /// // Another writer appends meanwhile.
    /// let other = Repository::<Clock>::new(store.clone());
    /// let mut theirs = other.load("c-1").await?;
    /// theirs.record(Ticked);
    /// other.save(&mut theirs).await?;
    ///
    /// let clock = clocks.load("c-1").await?; // version 1 from the cache + 1 event read
    /// assert_eq!((clock.version(), clock.state().ticks), (2, 2));
    /// assert_eq!(clocks.cached(), 0, "in use, not in the cache");
    ///
    /// // No cache: every load reads the whole stream.
    /// assert_eq!(Repository::<Clock>::new(store).with_cache(0).cached(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(StateCache::new(capacity)));
        self
    }

    /// How many aggregates the [cache](Self::with_cache) holds (0 without one).
    #[must_use]
    pub fn cached(&self) -> usize {
        self.cache.as_deref().map_or(0, StateCache::len)
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
        self.store.shared()
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
        self.load_stream(Self::stream(id)).await
    }

    /// [`load`](Self::load), given the aggregate's stream (its id shared, not copied).
    pub(crate) async fn load_stream(
        &self,
        stream: StreamId,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        if let Some(store) = self.at_once() {
            return self.load_at_once(store, &stream);
        }
        let span = instrument::load(&self.telemetry, &stream);
        let loaded = span.run(self.load_root(&stream, None)).await;
        instrument::loaded(&span, loaded.as_ref().map(Loaded::report));
        loaded.map(|loaded| loaded.root)
    }

    /// Loads the aggregate `id` as [`load`](Self::load) does, and finds the stored events
    /// whose metadata carries `command_id` ([`Metadata::COMMAND_ID`]) among those the
    /// load reads: the whole stream without snapshots; with them, the events after the
    /// newest snapshot and the `every` events up to it (read in the same query), so that
    /// the command whose save took the snapshot is found too. (An older command id is not
    /// recognised.)
    pub(crate) async fn load_for_command(
        &self,
        id: &str,
        command_id: &str,
    ) -> Result<(AggregateRoot<A>, Vec<EventEnvelope>), RepositoryError> {
        let stream = Self::stream(id);
        let span = instrument::load(&self.telemetry, &stream);
        let loaded = span.run(self.load_root(&stream, Some(command_id))).await;
        instrument::loaded(&span, loaded.as_ref().map(Loaded::report));
        loaded.map(|loaded| (loaded.root, loaded.command_events))
    }

    async fn load_root(
        &self,
        stream: &StreamId,
        command_id: Option<&str>,
    ) -> Result<Loaded<A>, RepositoryError> {
        // One replay below for the cached and the fresh root alike: the load's future (in
        // every command's) holds one replay's state, not one per way of loading.
        let root = match (
            self.take_cached(stream, command_id),
            self.snapshots.as_deref(),
        ) {
            (Some(root), _) => root,
            (None, None) => AggregateRoot::restore(stream.clone(), 0, A::default()),
            (None, Some(snapshots)) => {
                // Boxed: the snapshot path's replays stay out of the common load's future.
                let loaded = Box::pin(self.load_from_snapshot(snapshots, stream, command_id));
                let mut loaded = loaded.await?;
                self.set_cache_home(&mut loaded.root);
                return Ok(loaded);
            }
        };
        let mut loaded = self.replay_stream(root, None, command_id).await?;
        self.set_cache_home(&mut loaded.root);
        Ok(loaded)
    }

    /// The cached root of `stream`, taken out of the cache, if there is one (none for a
    /// load that looks for a command id: it searches the stream's events, so reads them
    /// all).
    fn take_cached(&self, stream: &StreamId, command_id: Option<&str>) -> Option<AggregateRoot<A>> {
        match (&self.cache, command_id) {
            (Some(cache), None) => cache.take(stream.aggregate_id()),
            _ => None,
        }
    }

    /// A loaded root goes back to this repository's cache when dropped, if it has one.
    fn set_cache_home(&self, root: &mut AggregateRoot<A>) {
        if let Some(cache) = &self.cache {
            root.set_home(Some(Arc::clone(cache) as Home<A>));
        }
    }

    /// Loads from the newest snapshot in `snapshots`, if any, else from the stream's start.
    async fn load_from_snapshot(
        &self,
        snapshots: &Snapshots<A>,
        stream: &StreamId,
        command_id: Option<&str>,
    ) -> Result<Loaded<A>, RepositoryError> {
        let new_root = || AggregateRoot::restore(stream.clone(), 0, A::default());
        match snapshots.read(stream).await {
            SnapshotRead::Found { version, state } => {
                let root = AggregateRoot::restore(stream.clone(), version, state);
                self.replay_stream(root, Some(snapshots.every), command_id)
                    .await
            }
            SnapshotRead::None => self.replay_stream(new_root(), None, command_id).await,
            SnapshotRead::Unreadable => {
                let loaded = self.replay_stream(new_root(), None, command_id).await?;
                // Replace it, so the next loads do not warn and replay in full again.
                if loaded.root.version() > 0 {
                    snapshots.take(&loaded.root).await;
                }
                Ok(loaded)
            }
        }
    }

    /// Applies the stored events after the root's version (restored from a snapshot taken
    /// `every` events apart, if `snapshot_every`), and collects those carrying
    /// `command_id`: after a snapshot, the read starts up to `every` events before it.
    async fn replay_stream(
        &self,
        mut root: AggregateRoot<A>,
        snapshot_every: Option<u64>,
        command_id: Option<&str>,
    ) -> Result<Loaded<A>, RepositoryError> {
        let restored = root.version();
        let from = match (command_id, snapshot_every) {
            (Some(_), Some(every)) => (restored + 1).saturating_sub(every).max(1),
            _ => restored + 1,
        };
        let mut replay = PagedReplay::new(&mut root, from, command_id);
        match self.store.at_once() {
            // The whole rest, which it holds anyway.
            Some(store) => {
                let rest = store.load(replay.stream(), from)?;
                replay.apply(&self.telemetry, rest)?;
            }
            None => {
                // Dropped with this block, before the read below: it may hold a connection.
                let store = self.store.as_dyn();
                let mut pages = store.load_pages(replay.stream(), from, LOAD_PAGE_EVENTS);
                while replay.next_page().is_some() {
                    replay.apply(&self.telemetry, pages.next_page().await?)?;
                }
            }
        }
        let replayed = replay.finish();
        let mut loaded = Loaded::new(root, replayed, snapshot_every.is_some());
        if let Some(command_id) = command_id {
            let from_first = loaded
                .command_events
                .first()
                .is_some_and(|e| e.version == from);
            if from > 1 && from_first {
                let carries = |e: &EventEnvelope| e.metadata.command_id() == Some(command_id);
                let earlier = self.store.load(loaded.root.stream(), 1).await?;
                let earlier = earlier.into_iter().filter(|e| e.version < from);
                loaded.command_events.splice(0..0, earlier.filter(carries));
            }
        }
        Ok(loaded)
    }

    /// Whether the aggregate `id` has at least one event.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn exists(&self, id: impl Into<String>) -> Result<bool, RepositoryError> {
        let stream = Self::stream(id);
        let check = async { Ok(self.store.as_dyn().stream_version(&stream).await? > 0) };
        instrument::exists(&self.telemetry, &stream, check).await
    }

    /// Appends the root's uncommitted events, expecting the stream to be at the version the
    /// root was loaded at, and returns them as stored.
    ///
    /// On success the root has no uncommitted event left; on failure (a
    /// [`VersionConflict`](crate::store::VersionConflict) included) it keeps them and nothing
    /// was appended.
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
        if let Some(store) = self.at_once() {
            return self.save_at_once(store, root, metadata);
        }
        let previous = root.persisted_version();
        let (events, expected) = self.begin_save::<NewEvent>(root, metadata)?;
        let span = instrument::save(&self.telemetry, root.stream(), expected, events.len());
        let appended = span
            .run(self.store.append(root.stream(), expected, events))
            .await;
        let events = self.end_save(root, &span, appended)?;
        if let Some(snapshots) = self.snapshots.as_deref() {
            // A snapshot when the save crossed a multiple of `every`.
            if root.version() / snapshots.every > previous / snapshots.every {
                span.run(snapshots.take(root)).await;
            }
        }
        Ok(events)
    }

    /// A save's first step: the root's new events, serialized with `metadata`, and the
    /// version the stream must be at.
    #[inline]
    fn begin_save<E: Outgoing>(
        &self,
        root: &AggregateRoot<A>,
        metadata: &Metadata,
    ) -> Result<(Vec<E>, ExpectedVersion), RepositoryError> {
        let events = new_events::<A, E>(root, metadata)?;
        Ok((
            events,
            ExpectedVersion::from_version(root.persisted_version()),
        ))
    }

    /// A save's last step: the append's outcome on the save span and, once stored, the
    /// root's events committed (see [`committed`](Self::committed)).
    #[inline]
    fn end_save(
        &self,
        root: &mut AggregateRoot<A>,
        span: &Span,
        appended: Result<AppendResult, StoreError>,
    ) -> Result<Vec<EventEnvelope>, RepositoryError> {
        instrument::appended(span, &appended);
        Ok(self.committed(root, appended?))
    }

    /// After the append: the root's events are stored; they are returned as stored.
    fn committed(&self, root: &mut AggregateRoot<A>, appended: AppendResult) -> Vec<EventEnvelope> {
        let mut events = appended.events;
        // The stored envelopes carry the events as recorded: decoding them in process
        // (projections, the outcome) clones them instead of parsing their JSON.
        let committed = root.take_committed();
        for (envelope, event) in events.iter_mut().zip(committed) {
            envelope.payload.set_recorded(event.into_recorded());
        }
        // The root holds the state stored in this repository's store now: dropped, it goes
        // back to this repository's cache (whichever loaded it), or nowhere without one.
        root.set_home(self.cache.clone().map(|cache| cache as Home<A>));
        events
    }
}

/// The root's uncommitted events, serialized, each with `metadata`: as [`NewEvent`]s, or
/// already as the envelopes a store that answers at once fills in (see [`Outgoing`]).
fn new_events<A: Aggregate, E: Outgoing>(
    root: &AggregateRoot<A>,
    metadata: &Metadata,
) -> Result<Vec<E>, RepositoryError> {
    // Sized to the events (collecting through `Result` would start at four).
    let mut events = Vec::with_capacity(root.uncommitted().len());
    for event in root.uncommitted() {
        let new = NewEvent::from_event(event).map_err(|source| RepositoryError::Encode {
            stream: root.stream().clone(),
            event_type: event.event_type(),
            source,
        })?;
        events.push(E::outgoing(
            new.with_metadata(metadata.clone()),
            root.stream(),
        ));
    }
    Ok(events)
}
