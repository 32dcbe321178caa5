//! A query's telemetry: the span `query.{QueryType}` (INTERNAL, child of the current span,
//! `cqrs.side` = `read`) and the `cqrs.query.*` metrics.

use std::fmt::Display;
use std::future::Future;

use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{SpanStart, Stopwatch, metrics};
use crate::telemetry::values::{Attr, DURATION_BOUNDARIES, Kind, SpanName};

static DURATION: metrics::DurationHistogram = metrics::DurationHistogram::new(
    attr::METRIC_QUERY_DURATION,
    "Duration of queries",
    &DURATION_BOUNDARIES,
);

static QUERIES: metrics::Counter =
    metrics::Counter::new(attr::METRIC_QUERY_TOTAL, "{query}", "Queries run");

/// `cqrs.query.result_size`, in items.
static RESULT_SIZE: metrics::Histogram = metrics::Histogram::new(
    attr::METRIC_QUERY_RESULT_SIZE,
    "{item}",
    "Items returned by collection queries",
    &[
        0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
        10_000.0, 20_000.0, 50_000.0,
    ],
);

/// Runs `query` inside its span; records its duration, its outcome and, when
/// `result_size` tells one, its result's size.
pub(super) async fn run<T, E, Fut>(
    query_type: &'static str,
    query: Fut,
    result_size: fn(&T) -> Option<usize>,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let name = SpanName::PrefixedStatic(attr::SPAN_QUERY_PREFIX, query_type);
    let span = SpanStart::new(true, name, Kind::Internal)
        .static_str(attr::QUERY_TYPE, query_type)
        .static_str(attr::CQRS_SIDE, attr::SIDE_READ)
        .start();
    let timer = Stopwatch::start();
    let result = span.run(query).await;
    let size = result.as_ref().ok().and_then(result_size);
    if let Some(size) = size {
        span.set(attr::QUERY_RESULT_COUNT, Attr::int(size));
        let query_type = [(attr::METRIC_ATTR_QUERY_TYPE, Attr::Static(query_type))];
        RESULT_SIZE.record(size as u64, query_type);
    }
    if let Err(error) = &result {
        span.record_error(std::any::type_name::<E>(), error);
    }
    let status = if result.is_ok() {
        attr::STATUS_SUCCESS
    } else {
        attr::STATUS_ERROR
    };
    let attributes = [
        (attr::METRIC_ATTR_QUERY_TYPE, Attr::Static(query_type)),
        (attr::METRIC_ATTR_QUERY_STATUS, Attr::Static(status)),
    ];
    DURATION.record(timer.elapsed(), attributes);
    QUERIES.add(1, attributes);
    result
}
