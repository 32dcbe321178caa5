//! Loads and saves that answer at once: through the in-memory store, which never waits,
//! without a future at any layer (the same steps and spans as the async ones).

use super::{Loaded, Repository, RepositoryError, instrument, new_events};
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::upcast::instrument::UpcastTally;
use crate::event::{EventEnvelope, Metadata, StreamId};
use crate::store::backend::{append_at_once, load_at_once};
use crate::store::{ExpectedVersion, InMemoryEventStore};

impl<A: Aggregate> Repository<A> {
    /// The in-memory store, when this repository has no snapshots: its loads and saves
    /// answer at once ([`load_now`](Self::load_now), [`save_now`](Self::save_now)).
    pub(crate) fn in_memory(&self) -> Option<&InMemoryEventStore> {
        match self.snapshots {
            None => self.store.in_memory(),
            Some(_) => None,
        }
    }

    /// The load from [`in_memory`](Self::in_memory)'s store: no future.
    pub(crate) fn load_now(
        &self,
        store: &InMemoryEventStore,
        stream: &StreamId,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let span = instrument::load(&self.telemetry, stream);
        let loaded = span.in_scope(|| {
            let mut root = self
                .cache
                .as_ref()
                .and_then(|cache| cache.take(stream.aggregate_id()))
                .unwrap_or_else(|| AggregateRoot::restore(stream.clone(), 0, A::default()));
            let stored = load_at_once(store, root.stream(), root.version() + 1)?;
            let mut upcasts = UpcastTally::default();
            let replayed = self.replay(&mut root, &stored, &mut upcasts)?;
            self.set_cache_home(&mut root);
            Ok(Loaded {
                root,
                replayed,
                snapshot_used: false,
                command_events: Vec::new(),
                upcasts,
            })
        });
        instrument::loaded(&span, loaded.as_ref().map(Loaded::report));
        loaded.map(|loaded| loaded.root)
    }

    /// The save into [`in_memory`](Self::in_memory)'s store: no future.
    pub(crate) fn save_now(
        &self,
        store: &InMemoryEventStore,
        root: &mut AggregateRoot<A>,
        metadata: &Metadata,
    ) -> Result<Vec<EventEnvelope>, RepositoryError> {
        if root.uncommitted().is_empty() {
            return Ok(Vec::new());
        }
        // Built as the envelopes the store returns: no second list of the same events.
        new_events::<A, EventEnvelope>(root, metadata).and_then(|events| {
            let expected = ExpectedVersion::from_version(root.persisted_version());
            let span = instrument::save(&self.telemetry, root.stream(), expected, events.len());
            let appended = span.in_scope(|| append_at_once(store, root.stream(), expected, events));
            instrument::appended(&span, &appended);
            Ok(self.committed(root, appended?))
        })
    }
}
