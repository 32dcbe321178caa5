//! Loads and saves through a store that answers at once ([`AtOnce`]): the steps of the
//! async ones ([`PagedReplay`], [`begin_save`](Repository::begin_save),
//! [`end_save`](Repository::end_save)), driven without a future.

use super::loaded::Replayed;
use super::{Loaded, PagedReplay, Repository, RepositoryError, instrument};
use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::{EventEnvelope, Metadata, StreamId};
use crate::store::at_once::AtOnce;

impl<A: Aggregate> Repository<A> {
    /// The store, when it answers at once and this repository has no snapshots: its loads
    /// and saves then run without a future ([`load_at_once`](Self::load_at_once),
    /// [`save_at_once`](Self::save_at_once)).
    pub(crate) fn at_once(&self) -> Option<&AtOnce> {
        match self.snapshots {
            None => self.store.at_once(),
            Some(_) => None,
        }
    }

    /// [`load`](Self::load) from [`at_once`](Self::at_once)'s store.
    pub(crate) fn load_at_once(
        &self,
        store: &AtOnce,
        stream: &StreamId,
    ) -> Result<AggregateRoot<A>, RepositoryError> {
        let span = instrument::load(&self.telemetry, stream);
        let loaded = span.in_scope(|| {
            let mut root = self
                .take_cached(stream, None)
                .unwrap_or_else(|| AggregateRoot::restore(stream.clone(), 0, A::default()));
            let from = root.version() + 1;
            let first = store.load(stream, from)?;
            // Nothing newer, the common answer for a cached root: no replay to set up.
            let replayed = if first.is_empty() {
                Replayed::default()
            } else {
                let mut replay = PagedReplay::new(&mut root, from, None);
                replay.apply(&self.telemetry, first)?;
                while let Some(next) = replay.next_page() {
                    let page = store.load(replay.stream(), next)?;
                    replay.apply(&self.telemetry, page)?;
                }
                replay.finish()
            };
            self.set_cache_home(&mut root);
            Ok(Loaded::new(root, replayed, false))
        });
        instrument::loaded(&span, loaded.as_ref().map(Loaded::report));
        loaded.map(|loaded| loaded.root)
    }

    /// [`save_with_metadata`](Self::save_with_metadata) into
    /// [`at_once`](Self::at_once)'s store.
    pub(crate) fn save_at_once(
        &self,
        store: &AtOnce,
        root: &mut AggregateRoot<A>,
        metadata: &Metadata,
    ) -> Result<Vec<EventEnvelope>, RepositoryError> {
        if root.uncommitted().is_empty() {
            return Ok(Vec::new());
        }
        // Built as the envelopes the store returns: no second list of the same events.
        let (events, expected) = self.begin_save::<EventEnvelope>(root, metadata)?;
        let span = instrument::save(&self.telemetry, root.stream(), expected, events.len());
        let appended = span.in_scope(|| store.append(root.stream(), expected, events));
        self.end_save(root, &span, appended)
    }
}
