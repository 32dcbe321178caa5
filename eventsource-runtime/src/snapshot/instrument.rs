//! The telemetry every [`SnapshotStore`](super::SnapshotStore) implementation shares: one
//! call per operation wraps the store's own work in the contract's CLIENT span
//! (`eventsource.snapshot_store.{save,get,delete,exists}`, child of the current span, with
//! the aggregate id and type, `eventsource.version`, `db.system.name`,
//! `db.operation.name` and, when the store's [`StoreTelemetry`] has them,
//! `db.collection.name` and `server.*`) and records the outcome.
//!
//! Without the `tracing` feature [`run`] runs the work and nothing else.
//!
//! ```
//! use eventsource_runtime::event::StreamId;
//! use eventsource_runtime::snapshot::instrument::{self, SnapshotOperation};
//! use eventsource_runtime::snapshot::Snapshot;
//! use eventsource_runtime::store::StoreError;
//! use eventsource_runtime::telemetry::config::StoreTelemetry;
//!
//! // In a store's `get`: the span records the found snapshot's version.
//! async fn get(telemetry: &StoreTelemetry, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
//!     instrument::run(telemetry, SnapshotOperation::Get, stream, None, async {
//!         Ok(None) // the store's own query
//!     })
//!     .await
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let telemetry = StoreTelemetry::new("my_database");
//! assert!(get(&telemetry, &StreamId::new("Order", "o-1")).await.unwrap().is_none());
//! # });
//! ```

use std::future::Future;

use super::Snapshot;
use crate::event::StreamId;
use crate::store::StoreError;
use crate::telemetry::config::{
    SPAN_SNAPSHOT_STORE_DELETE, SPAN_SNAPSHOT_STORE_EXISTS, SPAN_SNAPSHOT_STORE_GET,
    SPAN_SNAPSHOT_STORE_SAVE, StoreTelemetry,
};
#[cfg(feature = "tracing")]
use crate::telemetry::spans;
#[cfg(feature = "tracing")]
use tracing::Instrument as _;

/// A snapshot store operation: which span it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotOperation {
    /// [`SnapshotStore::save`](super::SnapshotStore::save).
    Save,
    /// [`SnapshotStore::get`](super::SnapshotStore::get).
    Get,
    /// [`SnapshotStore::delete`](super::SnapshotStore::delete).
    Delete,
    /// [`SnapshotStore::exists`](super::SnapshotStore::exists).
    Exists,
}

impl SnapshotOperation {
    /// The span name, `eventsource.snapshot_store.{save,get,delete,exists}`.
    #[must_use]
    pub fn span_name(self) -> &'static str {
        match self {
            Self::Save => SPAN_SNAPSHOT_STORE_SAVE,
            Self::Get => SPAN_SNAPSHOT_STORE_GET,
            Self::Delete => SPAN_SNAPSHOT_STORE_DELETE,
            Self::Exists => SPAN_SNAPSHOT_STORE_EXISTS,
        }
    }

    /// `db.operation.name`: `save`, `get`, `delete` or `exists`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Save => "save",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Exists => "exists",
        }
    }
}

/// What a snapshot store operation returns, as far as its span is concerned: a
/// [`get`](super::SnapshotStore::get) that found a snapshot records its version.
pub trait SnapshotOutcome {
    /// The version to record on the span once the operation succeeded, if any.
    fn found_version(&self) -> Option<u64> {
        None
    }
}

impl SnapshotOutcome for () {}

impl SnapshotOutcome for bool {}

impl SnapshotOutcome for Option<Snapshot> {
    fn found_version(&self) -> Option<u64> {
        self.as_ref().map(|snapshot| snapshot.version)
    }
}

/// Runs one snapshot store operation on `stream` inside its span.
///
/// `version` is recorded as `eventsource.version` up front (the saved snapshot's version;
/// `None` for the other operations); a `get` that finds a snapshot records its version
/// when done. An error ends the span with status ERROR and one `exception` event.
///
/// # Errors
/// Whatever `work` returns.
pub async fn run<T, Fut>(
    telemetry: &StoreTelemetry,
    operation: SnapshotOperation,
    stream: &StreamId,
    version: Option<u64>,
    work: Fut,
) -> Result<T, StoreError>
where
    T: SnapshotOutcome,
    Fut: Future<Output = Result<T, StoreError>>,
{
    #[cfg(feature = "tracing")]
    {
        let span = telemetry.snapshot_span(operation, stream, version);
        let result = work.instrument(span.clone()).await;
        match &result {
            Ok(outcome) => {
                if let Some(found) = outcome.found_version() {
                    spans::record_version(&span, found);
                }
            }
            Err(e) => spans::record_error(&span, error_type(e), e),
        }
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, operation, stream, version);
        work.await
    }
}

#[cfg(feature = "tracing")]
fn error_type(error: &StoreError) -> &'static str {
    match error {
        StoreError::Conflict(_) => "VersionConflict",
        StoreError::Corrupt { .. } => "StoreError::Corrupt",
        StoreError::Serialize { .. } => "StoreError::Serialize",
        StoreError::Unavailable(_) => "StoreError::Unavailable",
    }
}
