//! A projection's telemetry: the span `projection.{Name}` (CONSUMER, a new root **linked**
//! to the span that appended the event, from the context stored with it) and the
//! `cqrs.projection.lag` metric; for its runner, the `eventsource.projection.park` span and
//! the `eventsource.projection.events_parked` and `eventsource.projection.lease_lost`
//! counters.

use std::future::Future;
use std::time::Duration;

use super::{Projection, ProjectionError};
use crate::event::upcast::UpcastError;
use crate::event::upcast::UpcastTally;
use crate::event::{DecodeError, EventEnvelope, StreamId};
use crate::store::{Segment, StoreError};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::log::log_error;
use crate::telemetry::otel::{self, Span, SpanStart, metrics};
use crate::telemetry::toggles;
use crate::telemetry::values::{Attr, Chain, Kind, SpanName};

/// `cqrs.projection.lag`, with buckets from a millisecond (in step) to hours (a runner
/// catching up after a deploy).
static LAG: metrics::DurationHistogram = metrics::DurationHistogram::new(
    attr::METRIC_PROJECTION_LAG,
    "Time from an event's timestamp to its projection",
    &[
        0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0, 300.0, 600.0, 1_800.0, 3_600.0, 7_200.0, 14_400.0,
    ],
);

static LEASES_LOST: metrics::Counter = metrics::Counter::new(
    attr::METRIC_PROJECTION_LEASE_LOST,
    "{lease}",
    "Leases projection runners lost while processing",
);

static EVENTS_PARKED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_PROJECTION_EVENTS_PARKED,
    "{event}",
    "Unreadable events projection runners parked",
);

tokio::task_local! {
    /// The segment a [`SegmentedRunner`](super::SegmentedRunner)'s task handles, which its
    /// projection spans name (`eventsource.projection.segment`).
    static SEGMENT: Segment;
}

/// Runs `work` with the projection spans it starts marked as `segment`'s.
pub(super) async fn in_segment<F: Future>(segment: Segment, work: F) -> F::Output {
    SEGMENT.scope(segment, work).await
}

/// The span of `projection` handling `event`, and its lag recorded.
///
/// The lag is recorded whenever the process switch is on, even when the projection's own
/// span is off (projections are not traced by default): like the command metrics, the
/// metric does not depend on the component's span switch.
#[inline]
pub(super) fn span(projection: &dyn Projection, event: &EventEnvelope) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    started(projection, event)
}

/// [`span`] with the process switch on.
#[inline(never)]
fn started(projection: &dyn Projection, event: &EventEnvelope) -> Span {
    let lag = record_lag(projection.name(), event);
    let span = start(projection)
        .attr(attr::EVENT_TYPE, Attr::name(&event.event_type))
        .attr(attr::AGGREGATE_ID, Attr::Shared(event.stream.shared_id()))
        .int(attr::EVENT_SEQUENCE, event.version)
        .int(attr::EVENT_POSITION, event.position)
        .int(attr::PROJECTION_LAG_MS, lag.as_millis())
        .link(&event.metadata, &[])
        .start();
    record_upcasts(&span, std::slice::from_ref(event));
    span
}

/// Says on `span` which of `events` were upcast, if any (nothing is looked at when the
/// span is not recorded: projection spans are off by default).
fn record_upcasts(span: &Span, events: &[EventEnvelope]) {
    if !span.is_recording() {
        return;
    }
    let mut upcasts = UpcastTally::default();
    for event in events {
        upcasts.add(event.payload.upcast_from());
    }
    upcasts.record(span);
}

/// The span of `projection` handling `events` in one call (a new root, the number of
/// events, the first one's position, a link to each event's stored context), and the lag
/// of each event recorded.
pub(super) fn batch_span(projection: &dyn Projection, events: &[EventEnvelope]) -> Span {
    if !otel::enabled() {
        return Span::none();
    }
    let mut span = start(projection);
    span.int(attr::EVENT_COUNT, events.len());
    if let Some(first) = events.first() {
        span.int(attr::EVENT_POSITION, first.position);
    }
    for event in events {
        record_lag(projection.name(), event);
        span.link(&event.metadata, &[]);
    }
    let span = span.start();
    record_upcasts(&span, events);
    span
}

/// A projection span, before what it is about: name, kind, parent, the projection's
/// attributes.
fn start(projection: &dyn Projection) -> SpanStart<'_> {
    let projection_name = projection.name();
    let name = match projection.span_name() {
        Some(name) => SpanName::Borrowed(name),
        None => SpanName::Prefixed(attr::SPAN_PROJECTION_PREFIX, projection_name),
    };
    let enabled = toggles::projection_enabled(projection.tracing_enabled());
    let mut span = SpanStart::new(enabled, name, Kind::Consumer);
    span.root()
        .str(attr::PROJECTION_NAME, projection_name)
        .static_str(attr::CQRS_SIDE, attr::SIDE_PROJECTION);
    // Looked up only for a span that is recorded: projection spans are off by default.
    if enabled && let Ok(segment) = SEGMENT.try_with(|segment| *segment) {
        span.attr(attr::PROJECTION_SEGMENT, Attr::Display(&segment));
    }
    span
}

/// Records how long ago `event` was stored, as `cqrs.projection.lag`; returns it.
fn record_lag(projection_name: &str, event: &EventEnvelope) -> Duration {
    let lag = chrono::Utc::now()
        .signed_duration_since(event.timestamp)
        .to_std()
        .unwrap_or(Duration::ZERO);
    LAG.record(
        lag,
        [
            (
                attr::METRIC_ATTR_PROJECTION_NAME,
                Attr::Str(projection_name),
            ),
            (attr::METRIC_ATTR_EVENT_TYPE, Attr::name(&event.event_type)),
        ],
    );
    lag
}

/// A failed delivery ends the span with ERROR and one `exception` event.
pub(super) fn handled(span: &Span, result: &Result<(), &ProjectionError>) {
    if let Err(error) = result {
        span.record_error("ProjectionError", &Chain(error));
    }
}

/// A runner lost the projection's lease while processing: the counter and a log line.
pub(super) fn lease_lost(projection: &str) {
    LEASES_LOST.add(
        1,
        [(attr::METRIC_ATTR_PROJECTION_NAME, Attr::Str(projection))],
    );
    log_error!(
        projection,
        "projection runner lost its lease and stopped handling events: another runner may \
         hold the projection now"
    );
}

/// The span of a runner parking the unreadable event at `position` (a root, status ERROR
/// from `error`), and the counter. The span is recorded whatever the projection's own
/// switch (it is rare, and what an operator looks for), unless projection tracing is
/// switched off for the process.
pub(super) fn parking(projection: &str, position: u64, error: &StoreError) -> Span {
    let mut span = park_span(projection, position);
    if let StoreError::Corrupt {
        stream, version, ..
    } = error
    {
        with_stream(&mut span, stream, *version);
    }
    let span = span.start();
    span.record_error("StoreError::Corrupt", &Chain(error));
    span
}

/// The span of a runner parking the event at `position` (`version` of `stream`) that
/// cannot be upcast, as [`parking`] does for an unreadable one, and the counter.
pub(super) fn parking_upcast(
    projection: &str,
    position: u64,
    stream: &StreamId,
    version: u64,
    error: &UpcastError,
) -> Span {
    let mut span = park_span(projection, position);
    let span = with_stream(&mut span, stream, version)
        .str(attr::EVENT_TYPE, &error.event_type)
        .start();
    span.record_error("UpcastError", &Chain(error));
    span
}

/// The span of a runner parking the event at `position` (`version` of `stream`, stored as
/// `event_type`) that its handler cannot decode, as [`parking`] does, and the counter.
pub(super) fn parking_undecodable(
    projection: &str,
    position: u64,
    stream: &StreamId,
    version: u64,
    event_type: &str,
    error: &DecodeError,
) -> Span {
    let mut span = park_span(projection, position);
    let span = with_stream(&mut span, stream, version)
        .str(attr::EVENT_TYPE, event_type)
        .start();
    span.record_error("DecodeError", &Chain(error));
    span
}

/// The span of a runner stopping at the event at `position` it cannot read (`stream` and
/// `version` when the store could tell them) or upcast (`event_type`): a root, recorded as
/// the park span is; [`stopped`] ends it with the runner's error.
pub(super) fn stopping(
    projection: &str,
    position: u64,
    stream: Option<(&StreamId, u64)>,
    event_type: Option<&str>,
) -> Span {
    let mut span = unreadable_span(attr::SPAN_PROJECTION_STOP, projection, position);
    if let Some((stream, version)) = stream {
        with_stream(&mut span, stream, version);
    }
    if let Some(event_type) = event_type {
        span.str(attr::EVENT_TYPE, event_type);
    }
    span.start()
}

/// The stop span's status ERROR with one exception: the runner's `error`, of the type
/// `kind` names.
pub(super) fn stopped(span: &Span, kind: &'static str, error: &(dyn std::error::Error + 'static)) {
    span.record_error(kind, &Chain(error));
}

/// The park span of `projection` at `position`, not yet started, and the counter.
fn park_span(projection: &str, position: u64) -> SpanStart<'_> {
    EVENTS_PARKED.add(
        1,
        [(attr::METRIC_ATTR_PROJECTION_NAME, Attr::Str(projection))],
    );
    unreadable_span(attr::SPAN_PROJECTION_PARK, projection, position)
}

/// A span `name` of `projection` about the unreadable event at `position`, not yet
/// started: recorded whatever the projection's own switch.
fn unreadable_span<'a>(name: &'static str, projection: &'a str, position: u64) -> SpanStart<'a> {
    let enabled = toggles::projection_enabled(true);
    let mut span = SpanStart::new(enabled, SpanName::Static(name), Kind::Internal);
    span.root()
        .str(attr::PROJECTION_NAME, projection)
        .static_str(attr::CQRS_SIDE, attr::SIDE_PROJECTION)
        .int(attr::EVENT_POSITION, position);
    span
}

/// The parked event's stream and its version there.
fn with_stream<'s, 'a>(
    span: &'s mut SpanStart<'a>,
    stream: &'a StreamId,
    version: u64,
) -> &'s mut SpanStart<'a> {
    span.str(attr::AGGREGATE_TYPE, stream.aggregate_type())
        .str(attr::AGGREGATE_ID, stream.aggregate_id())
        .int(attr::EVENT_SEQUENCE, version)
}
