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
