//! Aggregates: state rebuilt from events, and the root that tracks version and
//! uncommitted events.

use std::sync::Arc;

use crate::event::{DomainEvent, StreamId};

/// An event-sourced aggregate's state.
///
/// Usually derived: `#[derive(Aggregate)]` generates the event enum and an
/// [`apply_event`](Self::apply_event) that dispatches each event to the matching [`Apply`] impl.
///
/// ```
/// use eventsource_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Opened { pub owner: String }
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Closed;
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(type = "Account", events(Opened, Closed))]
/// pub struct Account { owner: String, open: bool }
///
/// impl Apply<Opened> for Account {
///     fn apply(&mut self, event: &Opened) {
///         self.owner = event.owner.clone();
///         self.open = true;
///     }
/// }
/// impl Apply<Closed> for Account {
///     fn apply(&mut self, _: &Closed) { self.open = false; }
/// }
///
/// let mut account = Account::default();
/// account.apply_event(&AccountEvent::from(Opened { owner: "ada".into() }));
/// assert!(account.open);
/// assert_eq!(Account::TYPE, "Account");
/// ```
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The aggregate type name stored with every event (e.g. `"Order"`).
    const TYPE: &'static str;
    /// The aggregate's event set.
    type Event: DomainEvent;
    /// The schema version of the state's serialized form, kept with each snapshot (1 unless
    /// `#[aggregate(snapshot_version = N)]` says otherwise). Bump it when the state's shape
    /// changes: a snapshot of another version is ignored with one warning and the aggregate
    /// is replayed from its events.
    const SNAPSHOT_VERSION: u32 = 1;
    /// Applies one event to the state. Must not fail: an event is a fact.
    fn apply_event(&mut self, event: &Self::Event);
}

/// How an aggregate's state changes when event `E` happens.
///
/// Write one impl per event listed in `#[aggregate(events(...))]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say how it applies `{E}`",
    label = "no `impl Apply<{E}> for {Self}`",
    note = "add `impl eventsource_runtime::aggregate::Apply<{E}> for {Self} {{ fn apply(&mut self, event: &{E}) {{ /* change the state */ }} }}`"
)]
pub trait Apply<E> {
    /// Changes the state to reflect `event`.
    fn apply(&mut self, event: &E);
}

/// An event was offered to an aggregate out of sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event out of sequence on {stream}: expected version {expected}, got {actual}")]
pub struct OutOfSequence {
    /// The aggregate's stream.
    pub stream: StreamId,
    /// The version the next event must carry.
    pub expected: u64,
    /// The version it carried.
    pub actual: u64,
}

/// An aggregate's state together with its identity, its version and the events recorded
/// since it was loaded.
///
/// A root loaded or saved through a [`Repository`](crate::repository::Repository) with a
/// cache goes back into that cache when it is dropped, with nothing uncommitted: the next
/// load of the aggregate starts from it instead of replaying the stream. Roots are not
/// copied for the cache, so an aggregate state need not be `Clone`.
#[derive(Clone)]
pub struct AggregateRoot<A: Aggregate> {
    stream: StreamId,
    version: u64,
    state: A,
    uncommitted: Vec<A::Event>,
    /// Where the root goes back when dropped: set by a repository's load and save, cleared
    /// by whatever changes the state other than through them (see [`Home`]).
    home: Option<Home<A>>,
}

/// A cache the root goes back to when dropped (a repository's).
pub(crate) type Home<A> = Arc<dyn Keep<A>>;

/// Keeps the state of a root dropped at a stored version.
pub(crate) trait Keep<A>: Send + Sync {
    /// `state` is the aggregate's state after the event at `version` of `stream`.
    fn keep(&self, stream: StreamId, version: u64, state: A);
}

impl<A: Aggregate + std::fmt::Debug> std::fmt::Debug for AggregateRoot<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateRoot")
            .field("stream", &self.stream)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("uncommitted", &self.uncommitted)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> Drop for AggregateRoot<A> {
    fn drop(&mut self) {
        // Only a state that is exactly the stored one at `version` goes back.
        if let Some(home) = self.home.take()
            && self.uncommitted.is_empty()
        {
            let state = std::mem::take(&mut self.state);
            home.keep(self.stream.clone(), self.version, state);
        }
    }
}

impl<A: Aggregate> AggregateRoot<A> {
    /// A new aggregate with no history (version 0).
    pub fn new(id: impl Into<String>) -> Self {
        Self::restore(StreamId::new(A::TYPE, id), 0, A::default())
    }

    /// An aggregate restored from a snapshot: `state` is its state after the event at
    /// `version`; the events after it are then [replayed](Self::replay_one) from
    /// `version + 1`.
    ///
    /// ```
    /// # use eventsource_runtime::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # pub struct Ticked;
    /// # #[derive(Default, Aggregate)]
    /// # #[aggregate(type = "Clock", events(Ticked))]
    /// # pub struct Clock { ticks: u64 }
    /// # impl Apply<Ticked> for Clock { fn apply(&mut self, _: &Ticked) { self.ticks += 1; } }
    /// let mut clock = AggregateRoot::from_snapshot("c-1", 10, Clock { ticks: 10 });
    /// clock.replay_one(11, &Ticked.into()).unwrap();
    /// assert_eq!((clock.version(), clock.state().ticks), (11, 11));
    /// ```
    pub fn from_snapshot(id: impl Into<String>, version: u64, state: A) -> Self {
        Self::restore(StreamId::new(A::TYPE, id), version, state)
    }

    /// The aggregate's id.
    #[must_use]
    pub fn id(&self) -> &str {
        self.stream.aggregate_id()
    }

    /// The aggregate's stream (type and id).
    #[must_use]
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The version of the last event applied, recorded ones included (0 for none).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version the store holds: [`version`](Self::version) less the uncommitted events.
    #[must_use]
    pub fn persisted_version(&self) -> u64 {
        self.version - self.uncommitted.len() as u64
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The events recorded since the last load or save.
    #[must_use]
    pub fn uncommitted(&self) -> &[A::Event] {
        &self.uncommitted
    }

    /// Applies a new event to the state and queues it for the next save.
    pub fn record(&mut self, event: impl Into<A::Event>) {
        let event = event.into();
        self.state.apply_event(&event);
        self.version += 1;
        self.uncommitted.push(event);
    }

    /// A root at `version` of `stream`, in `state`, with nothing uncommitted.
    pub(crate) fn restore(stream: StreamId, version: u64, state: A) -> Self {
        Self {
            stream,
            version,
            state,
            uncommitted: Vec::new(),
            home: None,
        }
    }

    /// Sends the root back to `home` when it is dropped at a stored version (nowhere with
    /// `None`).
    pub(crate) fn set_home(&mut self, home: Option<Home<A>>) {
        self.home = home;
    }

    /// Takes out the uncommitted events a save stored: the state is the stored one now.
    pub(crate) fn take_committed(&mut self) -> Vec<A::Event> {
        std::mem::take(&mut self.uncommitted)
    }

    /// Records a decision's events, in order, as [`record`](Self::record) does one by one;
    /// the decision's list becomes the uncommitted list when that is empty (no copy).
    pub(crate) fn record_decided(&mut self, events: Vec<A::Event>) {
        for event in &events {
            self.state.apply_event(event);
        }
        self.version += events.len() as u64;
        if self.uncommitted.is_empty() {
            self.uncommitted = events;
        } else {
            self.uncommitted.extend(events);
        }
    }

    /// Applies an event read back from the store, checking that it is the next one.
    ///
    /// # Errors
    /// [`OutOfSequence`] when `version` is not exactly one more than the current version; the
    /// state is left untouched.
    pub fn replay_one(&mut self, version: u64, event: &A::Event) -> Result<(), OutOfSequence> {
        // The caller vouches for the event: the root no longer goes back to a cache.
        self.home = None;
        self.replay_stored(version, event)
    }

    /// [`replay_one`](Self::replay_one) for an event the repository read from the store.
    pub(crate) fn replay_stored(
        &mut self,
        version: u64,
        event: &A::Event,
    ) -> Result<(), OutOfSequence> {
        self.advance_stored(version)?;
        self.state.apply_event(event);
        Ok(())
    }

    /// Moves to the stored event at `version`, the next one, without applying anything: a
    /// stored event that is no event now (split into none), or whose events are applied by
    /// [`apply_part`](Self::apply_part).
    pub(crate) fn advance_stored(&mut self, version: u64) -> Result<(), OutOfSequence> {
        let expected = self.version + 1;
        if version != expected {
            return Err(OutOfSequence {
                stream: self.stream.clone(),
                expected,
                actual: version,
            });
        }
        self.version = version;
        Ok(())
    }

    /// Applies one more event made of the stored event at the root's version (the later
    /// events of a split).
    pub(crate) fn apply_part(&mut self, event: &A::Event) {
        self.state.apply_event(event);
    }

    /// Rebuilds the state from stored `(version, event)` pairs, in order.
    ///
    /// # Errors
    /// [`OutOfSequence`] at the first event whose version is not the next one; the events
    /// before it stay applied.
    pub fn replay<'e, I>(&mut self, events: I) -> Result<(), OutOfSequence>
    where
        I: IntoIterator<Item = (u64, &'e A::Event)>,
    {
        events
            .into_iter()
            .try_for_each(|(version, event)| self.replay_one(version, event))
    }

    /// Takes the uncommitted events out, as a save does once the store accepted them.
    ///
    /// The state keeps them applied, so the root no longer goes back to a repository's
    /// cache when dropped.
    pub fn take_uncommitted(&mut self) -> Vec<A::Event> {
        if !self.uncommitted.is_empty() {
            self.home = None;
        }
        std::mem::take(&mut self.uncommitted)
    }

    /// Consumes the root, returning the state.
    pub fn into_state(mut self) -> A {
        self.home = None;
        std::mem::take(&mut self.state)
    }
}
