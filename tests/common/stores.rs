//! A test's own event store over another: [`Over`] forwards every required `EventStore`
//! method to the store a test's [`Intercept`] names, except those the test writes itself
//! (a lost commit, an outage, damaged rows, a contended stream).
//!
//! Like a user's own store, it implements only the required methods: the provided ones
//! (`load_page`, `read_segment`, the append signal, `events_by_correlation`, ...) keep their
//! defaults, whatever the wrapped store does better.
//!
//! ```ignore
//! struct Flaky(InMemoryEventStore);
//!
//! #[async_trait]
//! impl Intercept for Flaky {
//!     type Inner = InMemoryEventStore;
//!     fn inner(&self) -> &InMemoryEventStore {
//!         &self.0
//!     }
//!     async fn read_all(&self, _: u64, _: usize) -> Result<ReadBatch, StoreError> {
//!         Err(StoreError::Unavailable("connection refused".into()))
//!     }
//! }
//!
//! let store = Over(Flaky(InMemoryEventStore::new()));
//! ```

use eventsource_runtime::async_trait;
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::store::{
    AppendResult, EventStore, ExpectedVersion, ReadBatch, StoreError,
};

/// What a test's store does differently from the store it wraps; every method it does not
/// write forwards to [`Intercept::inner`]. [`Over`] makes it an `EventStore`.
#[async_trait]
pub trait Intercept: Send + Sync + 'static {
    /// The store it wraps.
    type Inner: EventStore;

    /// The store it forwards to.
    fn inner(&self) -> &Self::Inner;

    /// `EventStore::append`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.inner().append(stream, expected, events).await
    }

    /// `EventStore::load`.
    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner().load(stream, from).await
    }

    /// `EventStore::read_all`.
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        self.inner().read_all(from, limit).await
    }

    /// `EventStore::stream_version`.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner().stream_version(stream).await
    }

    /// `EventStore::system_name`.
    fn system_name(&self) -> &'static str {
        self.inner().system_name()
    }
}

/// An [`Intercept`] as an `EventStore`; derefs to it, so a test still reaches its own
/// methods (`store.damage(3)`).
#[derive(Debug, Clone, Default)]
pub struct Over<T>(pub T);

impl<T> std::ops::Deref for Over<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[async_trait]
impl<T: Intercept> EventStore for Over<T> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append(stream, expected, events).await
    }

    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.0.load(stream, from).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        self.0.read_all(from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.0.stream_version(stream).await
    }

    fn system_name(&self) -> &'static str {
        self.0.system_name()
    }
}
