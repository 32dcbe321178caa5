//! The repository's spans: `eventsource.repository.{load,save,exists}` (INTERNAL, children
//! of the current span: the command's) and the opt-in `eventsource.aggregate.replay`.

use std::future::Future;

use super::{LoadReport, RepositoryError, RepositoryTelemetry};
use crate::event::StreamId;
use crate::store::{AppendResult, ExpectedVersion, StoreError};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{self, Span, SpanStart};
use crate::telemetry::values::{Attr, Chain, Kind, SpanName};

/// The `exception.type` of the repository's errors.
const ERROR_TYPE: &str = "RepositoryError";

/// An INTERNAL span named `name` about the aggregate of `stream`.
fn span<'a>(enabled: bool, name: &'static str, stream: &'a StreamId) -> SpanStart<'a> {
    let mut span = SpanStart::new(enabled, SpanName::Static(name), Kind::Internal);
    span.stream(stream);
    span
}

/// The load span of the aggregate of `stream`.
#[inline]
pub(super) fn load(telemetry: &RepositoryTelemetry, stream: &StreamId) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    span(telemetry.enabled, telemetry.names.load, stream).start()
}

/// After a load: how many events were replayed, the resulting version and whether a
/// snapshot was used; or the error.
#[inline]
pub(super) fn loaded(span: &Span, result: Result<LoadReport<'_>, &RepositoryError>) {
    if span.is_recording() {
        record_loaded(span, result);
    }
}

/// [`loaded`], on a recording span.
#[inline(never)]
fn record_loaded(span: &Span, result: Result<LoadReport<'_>, &RepositoryError>) {
    match result {
        Ok(loaded) => {
            span.set(attr::EVENTS_REPLAYED, Attr::int(loaded.replayed));
            span.set(attr::VERSION, Attr::int(loaded.version));
            span.set(attr::SNAPSHOT_USED, Attr::Bool(loaded.snapshot_used));
            loaded.upcasts.record(span);
        }
        Err(error) => span.record_error(ERROR_TYPE, &Chain(error)),
    }
}

/// The opt-in span around one aggregate replay, read page by page: its count is set when
/// it ends ([`replayed`]), as the pages are not all read when it starts.
pub(super) fn replay(telemetry: &RepositoryTelemetry, stream: &StreamId) -> Span {
    let enabled = telemetry.enabled && telemetry.replay_span;
    if !(enabled && otel::enabled()) {
        return Span::none();
    }
    span(enabled, attr::SPAN_AGGREGATE_REPLAY, stream).start()
}

/// A replay's count of events.
pub(super) fn replayed(span: &Span, events: usize) {
    span.set(attr::EVENTS_REPLAYED, Attr::int(events));
}

/// Runs an existence check inside its span.
pub(super) async fn exists<Fut>(
    telemetry: &RepositoryTelemetry,
    stream: &StreamId,
    check: Fut,
) -> Result<bool, RepositoryError>
where
    Fut: Future<Output = Result<bool, RepositoryError>>,
{
    let name = telemetry.names.exists;
    let span = span(telemetry.enabled, name, stream).start();
    let result = span.run(check).await;
    if let Err(error) = &result {
        span.record_error(ERROR_TYPE, &Chain(error));
    }
    result
}

/// The save span: the expected version and how many events are saved; the store's
/// append and the snapshot run inside it ([`Span::run`]).
#[inline]
pub(super) fn save(
    telemetry: &RepositoryTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: usize,
) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    let name = telemetry.names.save;
    span(telemetry.enabled, name, stream)
        .int(attr::EXPECTED_VERSION, expected.as_i64())
        .int(attr::EVENT_COUNT, events)
        .start()
}

/// After the append: the stream's new version, or the error.
#[inline]
pub(super) fn appended(span: &Span, result: &Result<AppendResult, StoreError>) {
    if !span.is_recording() {
        return;
    }
    match result {
        Ok(appended) => span.set(attr::VERSION, Attr::int(appended.version)),
        Err(error) => span.record_error("StoreError", &Chain(error)),
    }
}
