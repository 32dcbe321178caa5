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

use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

use crate::aggregate::{Aggregate, AggregateRoot, Keep};
use crate::event::StreamId;

/// One cached aggregate: its state after the event at `version`.
struct Entry<A> {
    /// The hash of its aggregate id (kept for the table's growth).
    hash: u64,
    stream: StreamId,
    version: u64,
    state: A,
}

impl<A> Entry<A> {
    fn is(&self, id: &str) -> bool {
        self.stream.aggregate_id() == id
    }
}

/// Keyed by the aggregate id, hashed once per operation with foldhash (the ids are the
/// process's own, not an attacker's).
type Generation<A> = HashTable<Entry<A>>;

struct Generations<A> {
    new: Generation<A>,
    old: Generation<A>,
}

/// The cache of a repository.
pub(super) struct StateCache<A> {
    generations: Mutex<Generations<A>>,
    /// Entries per generation.
    generation_size: usize,
    hasher: foldhash::fast::RandomState,
}

impl<A> StateCache<A> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            generations: Mutex::new(Generations {
                new: HashTable::new(),
                old: HashTable::new(),
            }),
            generation_size: (capacity / 2).max(1),
            hasher: foldhash::fast::RandomState::default(),
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
        let hash = self.hasher.hash_one(id);
        let mut generations = self.lock();
        let generations = &mut *generations;
        let entry = match generations.new.find_entry(hash, |entry| entry.is(id)) {
            Ok(found) => found.remove().0,
            Err(_) => {
                generations
                    .old
                    .find_entry(hash, |entry| entry.is(id))
                    .ok()?
                    .remove()
                    .0
            }
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
        let hash = self.hasher.hash_one(stream.aggregate_id());
        let entry = Entry {
            hash,
            stream,
            version,
            state,
        };
        let id = entry.stream.aggregate_id();
        let mut generations = self.lock();
        let generations = &mut *generations;
        // Two roots of one aggregate (two loads, a clone) come back in any order: the
        // newest state stays.
        if let Ok(kept) = generations.old.find_entry(hash, |kept| kept.is(id)) {
            if kept.get().version > entry.version {
                return;
            }
            kept.remove();
        }
        let rehash = |kept: &Entry<A>| kept.hash;
        if generations.new.len() >= self.generation_size
            && generations.new.find(hash, |kept| kept.is(id)).is_none()
        {
            // The new generation becomes the old one; the old one's entries go, and its
            // table, grown already, is the new one's.
            std::mem::swap(&mut generations.new, &mut generations.old);
            generations.new.clear();
        }
        match generations.new.entry(hash, |kept| kept.is(id), rehash) {
            Slot::Occupied(kept) if kept.get().version > entry.version => {}
            Slot::Occupied(mut kept) => *kept.get_mut() = entry,
            Slot::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }
}
