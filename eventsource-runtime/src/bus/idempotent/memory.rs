//! Handled messages in process memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use uuid::Uuid;

use super::claims::{ClaimGuard, ClaimLocks};
use super::{MessageClaim, ProcessedMessages};
use crate::store::StoreError;

/// A handler's name and a message id.
type Key = (String, Uuid);

/// A [`ProcessedMessages`] store in process memory: for tests, demos and handlers whose
/// deliveries all reach one process and need no memory across restarts.
///
/// Cheap to clone; clones share the records. Concurrent claims of one handler and message
/// wait for each other.
///
/// ```
/// use eventsource_runtime::bus::{InMemoryProcessedMessages, ProcessedMessages};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let processed = InMemoryProcessedMessages::new();
/// let message = uuid::Uuid::now_v7();
/// let claim = processed.claim("audit", message).await?.expect("new");
/// claim.release().await; // the handler failed: not recorded
/// assert!(!processed.is_recorded("audit", message).await?);
/// assert!(processed.claim("audit", message).await?.is_some(), "to run again");
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryProcessedMessages {
    recorded: Arc<Mutex<HashSet<Key>>>,
    claims: Arc<ClaimLocks<Key>>,
}

impl InMemoryProcessedMessages {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        // Nothing panics while the set is locked, so a poisoned set is still consistent.
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ProcessedMessages for InMemoryProcessedMessages {
    async fn claim(
        &self,
        handler: &str,
        message_id: Uuid,
    ) -> Result<Option<Box<dyn MessageClaim>>, StoreError> {
        let key = (handler.to_owned(), message_id);
        let guard = self.claims.lock(key.clone()).await;
        if self.recorded().contains(&key) {
            return Ok(None);
        }
        Ok(Some(Box::new(InMemoryClaim {
            recorded: Arc::clone(&self.recorded),
            key,
            _guard: guard,
        })))
    }

    async fn is_recorded(&self, handler: &str, message_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.recorded().contains(&(handler.to_owned(), message_id)))
    }
}

/// A claim of the in-memory store.
struct InMemoryClaim {
    recorded: Arc<Mutex<HashSet<Key>>>,
    key: Key,
    _guard: ClaimGuard<Key>,
}

#[async_trait]
impl MessageClaim for InMemoryClaim {
    async fn record(self: Box<Self>) -> Result<(), StoreError> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.key.clone());
        Ok(())
    }

    async fn release(self: Box<Self>) {}
}
