//! The spans of the runtime's own components (command handling, repository, event store,
//! projections), and the status/exception recording every span shares.
//!
//! Each constructor returns `Span::none()` when the caller's switch or the process switch
//! is off, so nothing is formatted or evaluated then.

use std::fmt::Display;
use std::time::Duration;

use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::attributes as attr;
use super::config::{RepositoryTelemetry, StoreTelemetry};
use super::propagation;
use super::toggles;
use crate::event::{EventEnvelope, StreamId};
use crate::snapshot::instrument::SnapshotOperation;
use crate::store::ExpectedVersion;

/// The `tracing` target of every span and log line of the runtime.
pub const TARGET: &str = "eventsource";

/// Counts, versions and positions travel as OTel integers (a u64 would arrive as a string).
#[inline]
pub(crate) fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Whether a component whose own switch says `own` should emit spans now.
#[inline]
pub(crate) fn on(own: bool) -> bool {
    own && toggles::is_enabled()
}

/// Ends `span` with status ERROR described by `error`'s `Display`, and adds exactly one
/// `exception` span event with `exception.type` and `exception.message`.
pub fn record_error(span: &Span, error_type: &str, error: &(impl Display + ?Sized)) {
    if span.is_disabled() {
        return;
    }
    let (event, status) = exception(error_type, error);
    span.add_event(EXCEPTION_EVENT, event);
    span.set_status(status);
}

/// The name of the span event an error adds.
pub(crate) const EXCEPTION_EVENT: &str = attr::SPAN_EVENT_EXCEPTION;

/// The `exception` span event's attributes and the ERROR status for `error`.
pub(crate) fn exception(
    error_type: &str,
    error: &(impl Display + ?Sized),
) -> (Vec<KeyValue>, Status) {
    let message = error.to_string();
    (
        vec![
            KeyValue::new(attr::EXCEPTION_TYPE, error_type.to_owned()),
            KeyValue::new(attr::EXCEPTION_MESSAGE, message.clone()),
        ],
        Status::error(message),
    )
}

/// Records a panic on `span` as an error (type `panic`).
pub fn record_panic(span: &Span, payload: &(dyn std::any::Any + Send)) {
    record_error(span, "panic", &panic_message(payload));
}

/// A panic's message (`panicked` when it is not a string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

/// Names the span when it was created with `otel.name = Empty` (before it starts).
#[inline]
pub(crate) fn name(span: &Span, name: &str) {
    span.record("otel.name", name);
}

// ---- command -------------------------------------------------------------------------------

/// `command.{CommandType}` (or `name`), INTERNAL, child of the current span.
pub(crate) fn command(
    name_override: Option<&'static str>,
    command_type: &'static str,
    stream: &StreamId,
) -> Span {
    if !toggles::is_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "command",
        otel.name = Empty,
        { attr::COMMAND_TYPE } = command_type,
        { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
        { attr::AGGREGATE_ID } = stream.aggregate_id(),
        { attr::CQRS_SIDE } = attr::SIDE_WRITE,
        { attr::EVENT_COUNT } = Empty,
    );
    if !span.is_disabled() {
        match name_override {
            Some(n) => name(&span, n),
            None => name(
                &span,
                &format!("{}{command_type}", attr::SPAN_COMMAND_PREFIX),
            ),
        }
    }
    span
}

/// After the decision: the event count, the event types (a string array) and one
/// `domain_event_produced` span event per event.
pub(crate) fn command_decided(span: &Span, event_types: &[&'static str]) {
    if span.is_disabled() {
        return;
    }
    span.record(attr::EVENT_COUNT, int(event_types.len()));
    let types: Vec<StringValue> = event_types.iter().map(|t| StringValue::from(*t)).collect();
    span.set_attribute(attr::EVENT_TYPES, Value::Array(Array::String(types)));
    for event_type in event_types {
        span.add_event(
            attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED,
            vec![KeyValue::new(attr::EVENT_TYPE, *event_type)],
        );
    }
}

// ---- query -------------------------------------------------------------------------------

/// `query.{QueryType}`, INTERNAL, child of the current span.
pub(crate) fn query(query_type: &'static str) -> Span {
    if !toggles::is_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "query",
        otel.name = Empty,
        { attr::QUERY_TYPE } = query_type,
        { attr::CQRS_SIDE } = attr::SIDE_READ,
        { attr::QUERY_RESULT_COUNT } = Empty,
    );
    if !span.is_disabled() {
        name(&span, &format!("{}{query_type}", attr::SPAN_QUERY_PREFIX));
    }
    span
}

/// After a collection query: how many items it returned.
pub(crate) fn query_result_count(span: &Span, count: usize) {
    span.record(attr::QUERY_RESULT_COUNT, int(count));
}

// ---- repository ----------------------------------------------------------------------------

/// Repository load, INTERNAL.
pub(crate) fn repository_load(t: &RepositoryTelemetry, stream: &StreamId) -> Span {
    if !on(t.enabled) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        attr::SPAN_REPOSITORY_LOAD,
        otel.name = Empty,
        { attr::AGGREGATE_ID } = stream.aggregate_id(),
        { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
        { attr::EVENTS_REPLAYED } = Empty,
        { attr::VERSION } = Empty,
        { attr::SNAPSHOT_USED } = Empty,
    );
    name(&span, t.names.load);
    span
}

/// After a load: how many events were replayed, the resulting version, snapshot use.
pub(crate) fn repository_loaded(span: &Span, replayed: usize, version: u64, snapshot_used: bool) {
    span.record(attr::EVENTS_REPLAYED, int(replayed));
    span.record(attr::VERSION, int(version));
    span.record(attr::SNAPSHOT_USED, snapshot_used);
}

/// Aggregate replay, INTERNAL, when the repository opted in.
pub(crate) fn aggregate_replay(t: &RepositoryTelemetry, stream: &StreamId, events: usize) -> Span {
    if !t.replay_span || !on(t.enabled) {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        attr::SPAN_AGGREGATE_REPLAY,
        { attr::AGGREGATE_ID } = stream.aggregate_id(),
        { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
        { attr::EVENTS_REPLAYED } = int(events),
    )
}

/// Repository save, INTERNAL.
pub(crate) fn repository_save(
    t: &RepositoryTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: usize,
) -> Span {
    if !on(t.enabled) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        attr::SPAN_REPOSITORY_SAVE,
        otel.name = Empty,
        { attr::AGGREGATE_ID } = stream.aggregate_id(),
        { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
        { attr::EXPECTED_VERSION } = expected.as_i64(),
        { attr::EVENT_COUNT } = int(events),
        { attr::VERSION } = Empty,
    );
    name(&span, t.names.save);
    span
}

/// After a save or append: the stream's new version.
pub(crate) fn record_version(span: &Span, version: u64) {
    span.record(attr::VERSION, int(version));
}

/// Repository exists, INTERNAL.
pub(crate) fn repository_exists(t: &RepositoryTelemetry, stream: &StreamId) -> Span {
    if !on(t.enabled) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        attr::SPAN_REPOSITORY_EXISTS,
        otel.name = Empty,
        { attr::AGGREGATE_ID } = stream.aggregate_id(),
        { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
    );
    name(&span, t.names.exists);
    span
}

// ---- event store ---------------------------------------------------------------------------

impl StoreTelemetry {
    fn decorate(&self, span: &Span) {
        if span.is_disabled() {
            return;
        }
        if let Some(collection) = self.collection {
            span.set_attribute(attr::DB_COLLECTION_NAME, collection);
        }
        if let Some((address, port)) = &self.server {
            span.set_attribute(attr::SERVER_ADDRESS, address.clone());
            span.set_attribute(attr::SERVER_PORT, i64::from(*port));
        }
    }

    /// Stream read, CLIENT, child of the current span.
    #[must_use]
    pub fn load_span(&self, stream: &StreamId, from_version: u64, operation: &'static str) -> Span {
        if !on(self.enabled) {
            return Span::none();
        }
        let span = tracing::info_span!(
            target: TARGET,
            attr::SPAN_STORE_LOAD,
            otel.name = Empty,
            otel.kind = "client",
            { attr::AGGREGATE_ID } = stream.aggregate_id(),
            { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
            { attr::FROM_VERSION } = int(from_version),
            { attr::DB_SYSTEM_NAME } = self.system,
            { attr::DB_OPERATION_NAME } = operation,
            { attr::EVENTS_LOADED } = Empty,
        );
        name(&span, self.names.load);
        self.decorate(&span);
        span
    }

    /// Append, CLIENT, child of the current span.
    #[must_use]
    pub fn append_span(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: usize,
        operation: &'static str,
    ) -> Span {
        if !on(self.enabled) {
            return Span::none();
        }
        let span = tracing::info_span!(
            target: TARGET,
            attr::SPAN_STORE_APPEND,
            otel.name = Empty,
            otel.kind = "client",
            { attr::AGGREGATE_ID } = stream.aggregate_id(),
            { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
            { attr::EXPECTED_VERSION } = expected.as_i64(),
            { attr::EVENT_COUNT } = int(events),
            { attr::DB_SYSTEM_NAME } = self.system,
            { attr::DB_OPERATION_NAME } = operation,
            { attr::VERSION } = Empty,
        );
        name(&span, self.names.append);
        self.decorate(&span);
        span
    }

    /// Global read, CLIENT, child of the current span.
    #[must_use]
    pub fn read_all_span(&self, from_position: u64, limit: usize, operation: &'static str) -> Span {
        if !on(self.enabled) {
            return Span::none();
        }
        let span = tracing::info_span!(
            target: TARGET,
            attr::SPAN_STORE_READ_ALL,
            otel.name = Empty,
            otel.kind = "client",
            { attr::EVENT_POSITION } = int(from_position),
            "eventsource.limit" = int(limit),
            { attr::DB_SYSTEM_NAME } = self.system,
            { attr::DB_OPERATION_NAME } = operation,
            { attr::EVENTS_LOADED } = Empty,
        );
        name(&span, self.names.read_all);
        self.decorate(&span);
        span
    }
}

// ---- snapshot store ------------------------------------------------------------------------

impl StoreTelemetry {
    /// Snapshot store operation (`eventsource.snapshot_store.{save,get,delete,exists}`),
    /// CLIENT, child of the current span; `version` (if known) as `eventsource.version`.
    #[must_use]
    pub fn snapshot_span(
        &self,
        operation: SnapshotOperation,
        stream: &StreamId,
        version: Option<u64>,
    ) -> Span {
        if !on(self.enabled) {
            return Span::none();
        }
        macro_rules! span {
            ($name:expr) => {
                tracing::info_span!(
                    target: TARGET,
                    $name,
                    otel.kind = "client",
                    { attr::AGGREGATE_ID } = stream.aggregate_id(),
                    { attr::AGGREGATE_TYPE } = stream.aggregate_type(),
                    { attr::DB_SYSTEM_NAME } = self.system,
                    { attr::DB_OPERATION_NAME } = operation.as_str(),
                    { attr::VERSION } = Empty,
                )
            };
        }
        let span = match operation {
            SnapshotOperation::Save => span!(attr::SPAN_SNAPSHOT_STORE_SAVE),
            SnapshotOperation::Get => span!(attr::SPAN_SNAPSHOT_STORE_GET),
            SnapshotOperation::Delete => span!(attr::SPAN_SNAPSHOT_STORE_DELETE),
            SnapshotOperation::Exists => span!(attr::SPAN_SNAPSHOT_STORE_EXISTS),
        };
        if let Some(version) = version {
            record_version(&span, version);
        }
        self.decorate(&span);
        span
    }
}

/// After a read: how many events came back.
pub fn store_loaded(span: &Span, count: usize) {
    span.record(attr::EVENTS_LOADED, int(count));
}

/// After an append: the new version and one `event_persisted` span event per event.
pub fn store_appended(span: &Span, version: u64, events: &[EventEnvelope]) {
    if span.is_disabled() {
        return;
    }
    span.record(attr::VERSION, int(version));
    for event in events {
        span.add_event(
            attr::SPAN_EVENT_EVENT_PERSISTED,
            vec![
                KeyValue::new(attr::EVENT_TYPE, event.event_type.clone()),
                KeyValue::new(attr::EVENT_SEQUENCE, int(event.version)),
            ],
        );
    }
}

// ---- projections ---------------------------------------------------------------------------

/// `projection.{Name}` (or `name`), CONSUMER, a new root **linked** to the context stored in
/// the event; also records the lag metric.
///
/// The lag is recorded whenever the process switch is on, even when the projection's own
/// span is off (projections are not traced by default): like the command metrics, the
/// metric does not depend on the component's span switch.
pub fn projection(
    own: bool,
    projection_name: &str,
    name_override: Option<&str>,
    event: &EventEnvelope,
) -> Span {
    if !toggles::is_enabled() {
        return Span::none();
    }
    let lag = chrono::Utc::now()
        .signed_duration_since(event.timestamp)
        .to_std()
        .unwrap_or(Duration::ZERO);
    super::metrics::record_projection_lag(projection_name, &event.event_type, lag);
    if !toggles::projection_enabled(own) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "projection",
        otel.name = Empty,
        otel.kind = "consumer",
        { attr::PROJECTION_NAME } = projection_name,
        { attr::CQRS_SIDE } = attr::SIDE_PROJECTION,
        { attr::EVENT_TYPE } = event.event_type.as_str(),
        { attr::AGGREGATE_ID } = event.aggregate_id(),
        { attr::EVENT_SEQUENCE } = int(event.version),
        { attr::EVENT_POSITION } = int(event.position),
        { attr::PROJECTION_LAG_MS } = int(lag.as_millis()),
    );
    if span.is_disabled() {
        return span;
    }
    match name_override {
        Some(n) => name(&span, n),
        None => name(
            &span,
            &format!("{}{projection_name}", attr::SPAN_PROJECTION_PREFIX),
        ),
    }
    if let Some(producer) = propagation::stored_span_context(&event.metadata) {
        span.add_link(producer);
    }
    span
}
