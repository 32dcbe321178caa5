//! A query's telemetry: the span `query.{QueryType}` (INTERNAL, child of the current span,
//! `cqrs.side` = `read`) and the `cqrs.query.*` metrics.

use std::fmt::Display;
use std::future::Future;

use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{SpanStart, Stopwatch, metrics};
use crate::telemetry::values::{Attr, Counter, Kind, SpanName, Timing};

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
        metrics::record_result_size(size as u64, query_type);
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
    metrics::record_seconds(Timing::Query, timer.elapsed(), attributes);
    metrics::add(Counter::Queries, 1, attributes);
    result
}
