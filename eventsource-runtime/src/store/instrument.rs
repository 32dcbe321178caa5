//! The telemetry every [`EventStore`](super::EventStore) implementation shares: one call
//! per operation wraps the store's own work in the contract's CLIENT span (child of the
//! current span), stores the trace context in each appended event, and records the
//! outcome. Without the `tracing` feature these calls run the work and nothing else.
//!
//! ```
//! use eventsource_runtime::event::{EventEnvelope, StreamId};
//! use eventsource_runtime::store::instrument::{self, Operation};
//! use eventsource_runtime::store::{StoreError, StoreTelemetry};
//!
//! // In a store's `load`: the span records how many events came back.
//! async fn load(
//!     telemetry: &StoreTelemetry,
//!     stream: &StreamId,
//! ) -> Result<Vec<EventEnvelope>, StoreError> {
//!     let operation = Operation::new("load").with_query_text("SELECT * FROM events WHERE ...");
//!     instrument::load(telemetry, stream, 1, operation, async {
//!         Ok(Vec::new()) // the store's own query
//!     })
//!     .await
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let telemetry = StoreTelemetry::new("my_database");
//! assert!(load(&telemetry, &StreamId::new("Order", "o-1")).await.unwrap().is_empty());
//! # });
//! ```

use std::future::Future;

use super::outgoing::Outgoing;
use super::{AppendResult, ExpectedVersion, ReadBatch, StoreError, StoreTelemetry};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{self, Span, SpanStart};
use crate::telemetry::values::{Attr, Chain, Kind, SpanName};

/// A store operation as its span describes it: `db.operation.name`, and the statement,
/// recorded as `db.query.text` when the store's [`StoreTelemetry::query_text`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation<'a> {
    name: &'static str,
    query_text: Option<&'a str>,
}

impl<'a> Operation<'a> {
    /// The operation `name` (`append`, `load`, `read_all`, ...).
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            query_text: None,
        }
    }

    /// The statement the operation runs (with its placeholders, never the bound values).
    #[must_use]
    pub const fn with_query_text(mut self, text: &'a str) -> Self {
        self.query_text = Some(text);
        self
    }
}

/// The CLIENT span of one database operation named `name`, started, with what every store
/// operation's span says of its database (`db.*`, `server.*`) and of `stream`. Shared on
/// purpose with the snapshot stores ([`snapshot::instrument`](crate::snapshot::instrument)):
/// a snapshot store's span describes its database as the event store's does.
pub(crate) fn start_database_span(
    telemetry: &StoreTelemetry,
    name: &'static str,
    stream: Option<&StreamId>,
    operation: Operation<'_>,
) -> Span {
    let mut span = client_span(telemetry, name, stream);
    start(&mut span, telemetry, operation)
}

/// A CLIENT span named `name`, with the stream's id and type.
fn client_span<'a>(
    telemetry: &StoreTelemetry,
    name: &'static str,
    stream: Option<&'a StreamId>,
) -> SpanStart<'a> {
    let mut span = SpanStart::new(telemetry.enabled, SpanName::Static(name), Kind::Client);
    if let Some(stream) = stream {
        span.stream(stream);
    }
    span
}

/// Adds the database attributes and starts the span.
fn start(span: &mut SpanStart<'_>, telemetry: &StoreTelemetry, operation: Operation<'_>) -> Span {
    if span.is_inert() {
        return Span::none();
    }
    span.static_str(attr::DB_SYSTEM_NAME, telemetry.system)
        .static_str(attr::DB_OPERATION_NAME, operation.name);
    if let Some(collection) = telemetry.collection {
        span.static_str(attr::DB_COLLECTION_NAME, collection);
    }
    if let Some(namespace) = &telemetry.namespace {
        span.str(attr::DB_NAMESPACE, namespace);
    }
    if let Some((address, port)) = &telemetry.server {
        span.str(attr::SERVER_ADDRESS, address)
            .int(attr::SERVER_PORT, *port);
    }
    if telemetry.query_text
        && let Some(text) = operation.query_text
    {
        span.str(attr::DB_QUERY_TEXT, text);
    }
    span.start()
}

/// Ends `span` with status ERROR and one `exception` event for a store's error. Shared on
/// purpose with the snapshot stores (as [`start_database_span`]): a [`StoreError`] reads
/// the same on every store's span.
pub(crate) fn record_store_error(span: &Span, error: &StoreError) {
    let error_type = match error {
        StoreError::Conflict(_) => "VersionConflict",
        StoreError::Corrupt { .. } => "StoreError::Corrupt",
        StoreError::Serialize { .. } => "StoreError::Serialize",
        StoreError::Unavailable(_) => "StoreError::Unavailable",
        StoreError::InvalidStreamId { .. } => "StoreError::InvalidStreamId",
        StoreError::LeaseLost { .. } => "StoreError::LeaseLost",
        StoreError::Unsupported { .. } => "StoreError::Unsupported",
    };
    span.record_error(error_type, &Chain(error));
}

/// How many stored events of one append get an `event_persisted` span event: the first
/// 128, as many as the OpenTelemetry SDK's default span limits keep. A larger append's
/// span still counts all of its events (`eventsource.event.count`) and ends at the
/// stream's new version (`eventsource.version`); recording the rest would cost time for
/// span events the SDK drops.
pub const MAX_PERSISTED_SPAN_EVENTS: usize = 128;

/// Runs an append (`append` receives the events to store): the span, the W3C context into
/// each event's metadata (unless the caller put one there), one `event_persisted` span
/// event per stored event (the first [`MAX_PERSISTED_SPAN_EVENTS`]), the new version, the
/// status.
///
/// # Errors
/// Whatever `append` returns.
pub async fn append<F, Fut>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    operation: Operation<'_>,
    append: F,
) -> Result<AppendResult, StoreError>
where
    F: FnOnce(Vec<NewEvent>) -> Fut,
    Fut: Future<Output = Result<AppendResult, StoreError>>,
{
    let (span, events) = append_started(telemetry, stream, expected, events, operation);
    let result = span.run(append(events)).await;
    appended(&span, &result);
    result
}

/// [`append`] for a store that appends without waiting (the in-memory store): no future,
/// and the span is not made current: that work is the runtime's own, which starts no span
/// and reads no context, so attaching it would only cost time.
#[inline]
pub(crate) fn append_now<E: Outgoing>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<E>,
    operation: Operation<'_>,
    append: impl FnOnce(Vec<E>) -> Result<AppendResult, StoreError>,
) -> Result<AppendResult, StoreError> {
    // With the process switch off there is no span and no context to write.
    if !otel::enabled() {
        return append(events);
    }
    let (span, events) = append_started(telemetry, stream, expected, events, operation);
    let result = append(events);
    appended(&span, &result);
    result
}

/// The append span, started, and the events with its trace context.
#[inline(never)]
fn append_started<E: Outgoing>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    mut events: Vec<E>,
    operation: Operation<'_>,
) -> (Span, Vec<E>) {
    let mut span = client_span(telemetry, telemetry.names.append, Some(stream));
    span.int(attr::EXPECTED_VERSION, expected.as_i64())
        .int(attr::EVENT_COUNT, events.len());
    let span = start(&mut span, telemetry, operation);
    // With the process switch off no context is written: the events are not looked at.
    if otel::enabled() {
        span.inject_each(events.iter_mut().map(Outgoing::metadata_mut));
    }
    (span, events)
}

/// After an append: the new version and one `event_persisted` span event per stored event
/// (up to [`MAX_PERSISTED_SPAN_EVENTS`]), or the error.
fn appended(span: &Span, result: &Result<AppendResult, StoreError>) {
    if !span.is_recording() {
        return;
    }
    match result {
        Ok(appended) => {
            span.set(attr::VERSION, Attr::int(appended.version));
            for event in appended.events.iter().take(MAX_PERSISTED_SPAN_EVENTS) {
                span.add_event(
                    attr::SPAN_EVENT_EVENT_PERSISTED,
                    &[
                        (attr::EVENT_TYPE, Attr::name(&event.event_type)),
                        (attr::EVENT_SEQUENCE, Attr::int(event.version)),
                    ],
                );
            }
        }
        Err(error) => record_store_error(span, error),
    }
}

/// Runs a stream read: the span, how many events came back, the status.
///
/// # Errors
/// Whatever `load` returns.
pub async fn load<Fut>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    from_version: u64,
    operation: Operation<'_>,
    load: Fut,
) -> Result<Vec<EventEnvelope>, StoreError>
where
    Fut: Future<Output = Result<Vec<EventEnvelope>, StoreError>>,
{
    let span = load_started(telemetry, stream, from_version, operation);
    let result = span.run(load).await;
    read_finished(&span, &result);
    result
}

/// [`load`] for a store that reads without waiting (the in-memory store): no future, and
/// the span is not made current (as in [`append_now`]).
#[inline]
pub(crate) fn load_now(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    from_version: u64,
    operation: Operation<'_>,
    load: impl FnOnce() -> Result<Vec<EventEnvelope>, StoreError>,
) -> Result<Vec<EventEnvelope>, StoreError> {
    if !otel::enabled() {
        return load();
    }
    let span = load_started(telemetry, stream, from_version, operation);
    let result = load();
    read_finished(&span, &result);
    result
}

#[inline(never)]
fn load_started(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    from_version: u64,
    operation: Operation<'_>,
) -> Span {
    let mut span = client_span(telemetry, telemetry.names.load, Some(stream));
    span.int(attr::FROM_VERSION, from_version);
    start(&mut span, telemetry, operation)
}

/// Runs a global read: the span, how many events came back, the status.
///
/// # Errors
/// Whatever `read` returns.
pub async fn read_all<Fut>(
    telemetry: &StoreTelemetry,
    from_position: u64,
    limit: usize,
    operation: Operation<'_>,
    read_all: Fut,
) -> Result<ReadBatch, StoreError>
where
    Fut: Future<Output = Result<ReadBatch, StoreError>>,
{
    let mut span = client_span(telemetry, telemetry.names.read_all, None);
    span.int(attr::EVENT_POSITION, from_position);
    if limit != super::UNBOUNDED {
        span.int(attr::READ_LIMIT, limit);
    }
    let span = start(&mut span, telemetry, operation);
    let result = span.run(read_all).await;
    read_finished(&span, &result);
    if let Ok(batch) = &result {
        crate::event::upcast::record_read_upcasts(&span, batch);
    }
    result
}

/// Runs the listing of one correlation id's events: the span (with
/// `eventsource.correlation.id`), how many events came back, the status.
///
/// # Errors
/// Whatever `read` returns.
pub async fn events_by_correlation<Fut>(
    telemetry: &StoreTelemetry,
    correlation_id: &str,
    operation: Operation<'_>,
    read: Fut,
) -> Result<Vec<EventEnvelope>, StoreError>
where
    Fut: Future<Output = Result<Vec<EventEnvelope>, StoreError>>,
{
    let mut span = client_span(telemetry, telemetry.names.events_by_correlation, None);
    span.str(attr::CORRELATION_ID, correlation_id);
    let span = start(&mut span, telemetry, operation);
    let result = span.run(read).await;
    read_finished(&span, &result);
    result
}

/// After a read: how many events came back, or the error.
fn read_finished<E>(span: &Span, result: &Result<E, StoreError>)
where
    E: std::ops::Deref<Target = [EventEnvelope]>,
{
    match result {
        Ok(events) => span.set(attr::EVENTS_LOADED, Attr::int(events.len())),
        Err(error) => record_store_error(span, error),
    }
}
