//! Starting a `#[traced]` span on the direct path (see `telemetry::otel`): the expansion
//! asks [`has_direct`], checks the callsite with `tracing::enabled!`, then calls
//! [`start_direct`]; otherwise it makes a `tracing` span in the user's crate.

use std::borrow::Cow;

use opentelemetry::trace::SpanKind;
use opentelemetry::{KeyValue, Value};

use super::TracedSpan;
use crate::telemetry::otel::direct::{DirectTracer, Parent};

/// Whether the current subscriber carries eventsource's layer, so that `#[traced]` makes
/// its span on the SDK directly.
#[inline]
#[must_use]
pub fn has_direct() -> bool {
    tracing::dispatcher::has_been_set() && DirectTracer::with_current(|direct| direct.is_some())
}

/// Starts a span on the SDK, a child of the current OpenTelemetry context, with the
/// attributes that have a value. Falls back to no span if the subscriber changed since
/// [`has_direct`].
#[inline]
pub fn start_direct<const N: usize>(
    name: &'static str,
    kind: SpanKind,
    attributes: [(&'static str, Option<Value>); N],
) -> TracedSpan {
    let mut kept = Vec::with_capacity(N);
    for (key, value) in attributes {
        if let Some(value) = value {
            kept.push(KeyValue::new(key, value));
        }
    }
    let mut start = Some((kind, kept));
    DirectTracer::with_current(|direct| match (direct, start.take()) {
        (Some(direct), Some((kind, kept))) => TracedSpan::start_direct(
            direct,
            Cow::Borrowed(name),
            kind,
            kept,
            Vec::new(),
            &Parent::Current,
        ),
        _ => TracedSpan::none(),
    })
}
