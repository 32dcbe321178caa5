//! A repository's cache of recently used aggregates: the state and version each had when
//! its root was last dropped at a stored version, so the next load reads only the events
//! after that version.
//!
//! Nothing is copied: a load takes the aggregate out, and its root comes back when dropped
//! (see [`AggregateRoot`]'s `Drop`), so a root in use is not in the cache.
//!
//! Bounded by two generations of at most `capacity / 2` entries each: an aggregate that
//! comes back joins the new generation; when the new one is full it becomes the old one
//! (dropping the previous old one). So at most `capacity` entries are kept, the recently
//! used ones survive, and no operation scans the cache.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::{Arc, Mutex, PoisonError};

use crate::aggregate::{Aggregate, AggregateRoot, Keep};
use crate::event::StreamId;

/// One cached aggregate: its state after the event at `version`.
struct Entry<A> {
    stream: StreamId,
    version: u64,
    state: A,
}

/// Keyed by the aggregate id its stream id shares, hashed with foldhash (the ids are the
/// process's own, not an attacker's).
type Generation<A> = HashMap<Arc<str>, Entry<A>, foldhash::fast::RandomState>;

struct Generations<A> {
    new: Generation<A>,
    old: Generation<A>,
}

/// The cache of a repository.
pub(super) struct StateCache<A> {
    generations: Mutex<Generations<A>>,
    /// Entries per generation.
    generation_size: usize,
}

impl<A> StateCache<A> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            generations: Mutex::new(Generations {
                new: HashMap::default(),
                old: HashMap::default(),
            }),
            generation_size: (capacity / 2).max(1),
        }
    }

    /// At most this many aggregates are kept.
    pub(super) fn capacity(&self) -> usize {
        self.generation_size * 2
    }

    /// How many aggregates are cached.
    pub(super) fn len(&self) -> usize {
        let generations = self.lock();
        generations.new.len() + generations.old.len()
    }

    // Nothing panics while the lock is held, so a poisoned lock still guards whole entries.
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<A>> {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<A: Aggregate> StateCache<A> {
    /// Takes the aggregate `id` out of the cache, as a root at its cached version: the
    /// caller replays the events after it. A concurrent command on the same aggregate
    /// loads it from the store (and one of the two saves meets a version conflict, as
    /// without a cache).
    pub(super) fn take(&self, id: &str) -> Option<AggregateRoot<A>> {
        let mut generations = self.lock();
        let entry = match generations.new.remove(id) {
            Some(entry) => entry,
            None => generations.old.remove(id)?,
        };
        Some(AggregateRoot::restore(
            entry.stream,
            entry.version,
            entry.state,
        ))
    }
}

impl<A: Aggregate> Keep<A> for StateCache<A> {
    fn keep(&self, stream: StreamId, version: u64, state: A) {
        let key = Arc::clone(stream.shared_id());
        let entry = Entry {
            stream,
            version,
            state,
        };
        let mut generations = self.lock();
        let generations = &mut *generations;
        // Two roots of one aggregate (two loads, a clone) come back in any order: the
        // newest state stays.
        let newer = |kept: &Entry<A>| kept.version > entry.version;
        if let Some(kept) = generations.old.get(&key) {
            if newer(kept) {
                return;
            }
            generations.old.remove(&key);
        }
        if generations.new.len() >= self.generation_size && !generations.new.contains_key(&key) {
            // The new generation becomes the old one; the old one's entries go, and its
            // table, grown already, is the new one's.
            std::mem::swap(&mut generations.new, &mut generations.old);
            generations.new.clear();
        }
        match generations.new.entry(key) {
            Slot::Occupied(kept) if newer(kept.get()) => {}
            Slot::Occupied(mut kept) => {
                kept.insert(entry);
            }
            Slot::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }
}
