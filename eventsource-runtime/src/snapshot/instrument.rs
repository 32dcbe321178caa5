//! The telemetry every [`SnapshotStore`](super::SnapshotStore) implementation shares: one
//! call per operation wraps the store's own work in the contract's CLIENT span
//! (`eventsource.snapshot_store.{save,get,delete,exists}`, child of the current span, with
//! the aggregate id and type, `eventsource.version`, `db.system.name`,
//! `db.operation.name` and, when the store's [`StoreTelemetry`] has them,
//! `db.collection.name` and `server.*`) and records the outcome.
//!
//! Without the `tracing` feature [`run`] runs the work and nothing else.
//!
//! The SQL snapshot stores pass their statement along
//! ([`SnapshotOperation::with_query_text`]) for `db.query.text`.
//!
//! ```
//! use eventsource_runtime::event::StreamId;
//! use eventsource_runtime::snapshot::instrument::{self, SnapshotOperation};
//! use eventsource_runtime::snapshot::Snapshot;
//! use eventsource_runtime::store::{StoreError, StoreTelemetry};
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
use crate::store::instrument::{Operation, record_store_error, start_database_span};
use crate::store::{StoreError, StoreTelemetry};
use crate::telemetry::attributes::{
    SPAN_SNAPSHOT_STORE_DELETE, SPAN_SNAPSHOT_STORE_EXISTS, SPAN_SNAPSHOT_STORE_GET,
    SPAN_SNAPSHOT_STORE_SAVE, VERSION,
};
use crate::telemetry::values::Attr;

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

/// A snapshot store operation as its span describes it: which one, and the statement it
/// runs, recorded as `db.query.text` when the store's
/// [`StoreTelemetry::query_text`] is on. A [`SnapshotOperation`] converts into one without
/// a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotCall<'a> {
    operation: SnapshotOperation,
    query_text: Option<&'a str>,
}

impl From<SnapshotOperation> for SnapshotCall<'_> {
    fn from(operation: SnapshotOperation) -> Self {
        Self {
            operation,
            query_text: None,
        }
    }
}

impl SnapshotOperation {
    /// The operation with the statement it runs (placeholders only, never bound values).
    #[must_use]
    pub fn with_query_text(self, text: &str) -> SnapshotCall<'_> {
        SnapshotCall {
            operation: self,
            query_text: Some(text),
        }
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
pub async fn run<'a, T, Fut>(
    telemetry: &StoreTelemetry,
    operation: impl Into<SnapshotCall<'a>>,
    stream: &StreamId,
    version: Option<u64>,
    work: Fut,
) -> Result<T, StoreError>
where
    T: SnapshotOutcome,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let SnapshotCall {
        operation,
        query_text,
    } = operation.into();
    let mut database = Operation::new(operation.as_str());
    if let Some(text) = query_text {
        database = database.with_query_text(text);
    }
    let span = start_database_span(telemetry, operation.span_name(), Some(stream), database);
    if let Some(version) = version {
        span.set(VERSION, Attr::int(version));
    }
    let result = span.run(work).await;
    match &result {
        Ok(outcome) => {
            if let Some(found) = outcome.found_version() {
                span.set(VERSION, Attr::int(found));
            }
        }
        Err(error) => record_store_error(&span, error),
    }
    result
}
