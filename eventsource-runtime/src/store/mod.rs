//! Event stores: append-only logs of streams with optimistic concurrency.
//!
//! Every store implements [`EventStore`] with the same semantics (checked by one
//! conformance suite in the workspace tests):
//! - each stream's versions start at 1 and have no gap;
//! - an append states the version it expects the stream to be at and is all-or-nothing;
//! - the global position increases with every appended event, across all streams.

pub mod instrument;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_row;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::event::{EventEnvelope, NewEvent, StreamId};

pub use memory::InMemoryEventStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresCheckpointStore, PostgresEventStore, PostgresSnapshotStore};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteCheckpointStore, SqliteEventStore, SqliteSnapshotStore};

/// The version an append expects the stream to be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet (have no event).
    NoStream,
    /// The stream's last event must have exactly this version (0 means no event yet).
    Exact(u64),
}

impl ExpectedVersion {
    /// The expectation that matches a stream at `version` (0 meaning none).
    #[must_use]
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }

    /// Whether a stream currently at `actual` satisfies the expectation.
    #[must_use]
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(expected) => actual == expected,
        }
    }

    /// The expected version as a number for telemetry: -1 for `Any`, 0 for `NoStream`.
    #[must_use]
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Any => -1,
            Self::NoStream => 0,
            Self::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Another writer got there first: the stream is not at the expected version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version conflict on {stream}: expected {expected}, stream is at version {actual}")]
pub struct VersionConflict {
    /// The stream appended to.
    pub stream: StreamId,
    /// What the append expected.
    pub expected: ExpectedVersion,
    /// The stream's actual version (0: no event).
    pub actual: u64,
}

/// What a store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Optimistic concurrency check failed; nothing was appended.
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// A stored event cannot be read back (its stored form is damaged).
    #[error("stored event {stream} version {version} is unreadable: {reason}")]
    Corrupt {
        /// The event's stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An event's payload or metadata could not be serialized; nothing was appended.
    #[error("event of type `{event_type}` cannot be serialized: {source}")]
    Serialize {
        /// The event's type name.
        event_type: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The backend failed (connection lost, disk full, ...); nothing was appended.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a successful append returns.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendResult {
    /// The stream's version after the append (that of its last event).
    pub version: u64,
    /// The appended events as stored, with version and global position assigned.
    pub events: Vec<EventEnvelope>,
}

/// An append-only event store. Object safe: use it as `Arc<dyn EventStore>`.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at the `expected` version, all or nothing.
    ///
    /// Appending no event checks the expectation and returns the current version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with the actual version when the expectation fails;
    /// [`StoreError::Unavailable`] when the backend does.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// The events of `stream` whose version is `from_version` or later, in version order
    /// (empty for a stream that does not exist).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an unreadable stored event, [`StoreError::Unavailable`].
    async fn load(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// Up to `limit` events of all streams whose global position is `from_position` or later,
    /// in global order.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The stream's current version (0 when it has no event).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The store's database system, as in OpenTelemetry's `db.system.name` (e.g. `"sqlite"`).
    fn system_name(&self) -> &'static str;

    /// A signal that events were appended (its value: the newest global position the store
    /// knows of), so followers such as projection runners wake before their next poll.
    /// `None` when the store cannot tell; followers then only poll.
    fn appended_signal(&self) -> Option<AppendSignal> {
        None
    }
}

/// See [`EventStore::appended_signal`].
pub type AppendSignal = tokio::sync::watch::Receiver<u64>;

#[async_trait]
impl<S: EventStore + ?Sized> EventStore for Arc<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        (**self).append(stream, expected, events).await
    }

    async fn load(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        (**self).load(stream, from_version).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        (**self).read_all(from_position, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        (**self).stream_version(stream).await
    }

    fn system_name(&self) -> &'static str {
        (**self).system_name()
    }

    fn appended_signal(&self) -> Option<AppendSignal> {
        (**self).appended_signal()
    }
}
