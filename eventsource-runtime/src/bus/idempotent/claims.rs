//! Claims within one process: one async lock per key, kept only while someone holds or
//! waits for it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// A key's lock and how many claims hold or wait for it.
type Entry = (Arc<tokio::sync::Mutex<()>>, usize);

/// One lock per key (a handler and a message), made when first wanted and dropped when the
/// last holder or waiter is gone.
#[derive(Debug)]
pub(crate) struct ClaimLocks<K> {
    /// Each key's entry.
    held: Mutex<HashMap<K, Entry>>,
}

impl<K> Default for ClaimLocks<K> {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> ClaimLocks<K> {
    fn held(&self) -> MutexGuard<'_, HashMap<K, Entry>> {
        // Nothing panics while the map is locked, so a poisoned map is still consistent.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `key`'s lock and holds it until the guard is dropped. A caller that
    /// stops waiting leaves nothing behind.
    pub(crate) async fn lock(self: &Arc<Self>, key: K) -> ClaimGuard<K> {
        let lock = {
            let mut held = self.held();
            let entry = held.entry(key.clone()).or_default();
            entry.1 += 1;
            Arc::clone(&entry.0)
        };
        // Counted from here: dropped while waiting, the guard still gives its place up.
        let mut guard = ClaimGuard {
            locks: Arc::clone(self),
            key,
            held: None,
        };
        guard.held = Some(lock.lock_owned().await);
        guard
    }
}

/// Holds one key's lock (see [`ClaimLocks::lock`]).
#[derive(Debug)]
pub(crate) struct ClaimGuard<K: Eq + Hash + Clone> {
    locks: Arc<ClaimLocks<K>>,
    key: K,
    held: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> Drop for ClaimGuard<K> {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut held = self.locks.held();
        if let Some(entry) = held.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_key_is_held_by_one_claim_at_a_time_and_forgotten_after() {
        let locks = Arc::new(ClaimLocks::<u32>::default());
        let first = locks.lock(1).await;
        let _other_key = locks.lock(2).await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), locks.lock(1)).await;
        assert!(waiting.is_err(), "held by the first claim");
        drop(first);
        let second = locks.lock(1).await;
        drop(second);
        drop(_other_key);
        assert!(locks.held().is_empty(), "nothing left behind");
    }
}
