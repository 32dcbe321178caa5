//! The telemetry settings every store embeds (event stores and snapshot stores alike).

use crate::telemetry::attributes::{
    SPAN_STORE_APPEND, SPAN_STORE_EVENTS_BY_CORRELATION, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL,
};
use crate::telemetry::values::span_names;

span_names! {
    /// Span names of an event store's operations.
    pub struct StoreSpanNames {
        /// Reading one stream.
        load = SPAN_STORE_LOAD,
        /// Appending.
        append = SPAN_STORE_APPEND,
        /// Reading all streams.
        read_all = SPAN_STORE_READ_ALL,
        /// Listing the events of one correlation id.
        events_by_correlation = SPAN_STORE_EVENTS_BY_CORRELATION,
    }
}

/// A store's telemetry settings, as its spans describe it (see
/// [`instrument`](super::instrument)).
///
/// ```
/// use eventsource_runtime::store::StoreTelemetry;
///
/// let mut telemetry = StoreTelemetry::new("my_database");
/// telemetry.collection = Some("events");
/// assert!(telemetry.enabled && !telemetry.query_text);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreTelemetry {
    /// The component switch (on by default).
    pub enabled: bool,
    /// `db.system.name`.
    pub system: &'static str,
    /// `db.collection.name` (the events table), if the store has one.
    pub collection: Option<&'static str>,
    /// `server.address` and `server.port`, for networked stores.
    pub server: Option<(String, u16)>,
    /// `db.namespace` (PostgreSQL: `{database}.{schema}`), where known.
    pub namespace: Option<String>,
    /// Span names (of an event store's operations).
    pub names: StoreSpanNames,
    /// Whether each operation records its statement as `db.query.text` (off by default;
    /// never the bound values).
    pub query_text: bool,
}

impl StoreTelemetry {
    /// Spans on, for a store of `system`, with the default names.
    #[must_use]
    pub fn new(system: &'static str) -> Self {
        Self {
            enabled: true,
            system,
            collection: None,
            server: None,
            namespace: None,
            names: StoreSpanNames::default(),
            query_text: false,
        }
    }
}

/// The telemetry builders every store shares, event stores and snapshot stores alike
/// (in memory, PostgreSQL, SQLite). In the [prelude](crate::prelude).
///
/// A store implements [`configure_telemetry`](Self::configure_telemetry); the builders
/// come with it. Each changes this handle's settings: clones made before keep theirs.
///
/// ```
/// use eventsource_runtime::prelude::*;
/// use eventsource_runtime::store::StoreSpanNames;
///
/// let names = StoreSpanNames { append: "orders.append", ..StoreSpanNames::default() };
/// let quiet = InMemoryEventStore::new().enable_tracing(false).with_span_names(names);
/// let snapshots = InMemorySnapshotStore::new().enable_tracing(false);
/// # drop((quiet, snapshots));
/// ```
///
/// A snapshot store's spans are not an event store's operations: it has no span names to
/// override.
///
/// ```compile_fail,E0277
/// use eventsource_runtime::prelude::*;
/// use eventsource_runtime::store::StoreSpanNames;
///
/// let snapshots = InMemorySnapshotStore::new().with_span_names(StoreSpanNames::default());
/// ```
pub trait WithStoreTelemetry: Sized {
    /// This store with its telemetry settings changed by `change`.
    #[must_use]
    fn configure_telemetry(self, change: impl FnOnce(&mut StoreTelemetry)) -> Self;

    /// Builder: the component switch; `false` stops this store's spans (on by default).
    #[must_use]
    fn enable_tracing(self, enabled: bool) -> Self {
        self.configure_telemetry(|telemetry| telemetry.enabled = enabled)
    }

    /// Builder: overrides the span names of an event store's operations (e.g.
    /// `event_store.load`, `event_store.append`). Snapshot stores name their spans
    /// otherwise, so they do not offer it.
    #[must_use]
    fn with_span_names(self, names: StoreSpanNames) -> Self
    where
        Self: super::EventStore,
    {
        self.configure_telemetry(|telemetry| telemetry.names = names)
    }

    /// Builder, opt-in: record the SQL of each operation as `db.query.text` on its span
    /// (off by default). Only the statement with its placeholders is recorded, never the
    /// bound values. A store without SQL (in memory) has none to record.
    #[must_use]
    fn record_query_text(self, record: bool) -> Self {
        self.configure_telemetry(|telemetry| telemetry.query_text = record)
    }
}
