//! A repository's cache of recently used aggregates: the state and version each had after
//! its last load or save, so the next load reads only the events after that version.
//!
//! Bounded by two generations of at most `capacity / 2` entries each: a lookup moves an
//! entry from the old generation to the new one; when the new one is full it becomes the
//! old one (dropping the previous old one). So at most `capacity` entries are kept, the
//! recently used ones survive, and no operation scans the cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::aggregate::{Aggregate, AggregateRoot};

/// One cached aggregate: its state after the event at `version`.
struct Entry<A> {
    version: u64,
    state: A,
}

struct Generations<A> {
    new: HashMap<String, Entry<A>>,
    old: HashMap<String, Entry<A>>,
}

/// The cache of a repository. The state is cloned through a function pointer taken where
/// `A: Clone` is known, so that loading and saving need no such bound.
pub(super) struct StateCache<A> {
    generations: Mutex<Generations<A>>,
    /// Entries per generation.
    generation_size: usize,
    clone: fn(&A) -> A,
}

impl<A: Clone> StateCache<A> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            generations: Mutex::new(Generations {
                new: HashMap::new(),
                old: HashMap::new(),
            }),
            generation_size: (capacity / 2).max(1),
            clone: A::clone,
        }
    }
}

impl<A> StateCache<A> {
    /// At most this many aggregates are kept.
    pub(super) fn capacity(&self) -> usize {
        self.generation_size * 2
    }
}

impl<A: Aggregate> StateCache<A> {
    /// Takes the aggregate `id` out of the cache, as a root at its cached version: the
    /// caller replays the events after it. Taken, not copied: a concurrent command on the
    /// same aggregate loads it from the store (and one of the two saves meets a version
    /// conflict, as without a cache).
    pub(super) fn take(&self, id: &str) -> Option<AggregateRoot<A>> {
        let mut generations = self.lock();
        let entry = match generations.new.remove(id) {
            Some(entry) => entry,
            None => generations.old.remove(id)?,
        };
        Some(AggregateRoot::from_snapshot(id, entry.version, entry.state))
    }

    /// Keeps a copy of `root`'s state at its persisted version (its uncommitted events, if
    /// any, are not part of it).
    pub(super) fn put(&self, root: &AggregateRoot<A>) {
        if !root.uncommitted().is_empty() {
            return;
        }
        let entry = Entry {
            version: root.version(),
            state: (self.clone)(root.state()),
        };
        let mut generations = self.lock();
        if generations.new.len() >= self.generation_size && !generations.new.contains_key(root.id())
        {
            generations.old = std::mem::take(&mut generations.new);
        }
        generations.old.remove(root.id());
        generations.new.insert(root.id().to_owned(), entry);
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
