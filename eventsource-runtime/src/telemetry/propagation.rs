//! W3C trace context (`traceparent`, `tracestate`) and `baggage` in event metadata.
//!
//! At append time the current span's context is written into each event's [`Metadata`];
//! whoever consumes the event later (a projection, a bus consumer, after a restart) links to
//! it. The format is OpenTelemetry's own propagators', not a hand-written one. Missing or
//! malformed context is no error: the consumer starts a new root and the
//! `eventsource.trace_context.invalid` counter goes up.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use super::attributes as attr;
use super::otel::metrics;
use super::values::{Attr, Counter};
use crate::event::Metadata;

// Our own propagator, not the global one: the global default is a no-op until an
// application installs one, and stored context must not depend on that.
static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

static MISSING: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);

impl Injector for Metadata {
    fn set(&mut self, key: &str, value: String) {
        // An empty tracestate/baggage carries nothing; keep the stored metadata lean.
        if !value.is_empty() {
            self.insert(key, value);
        }
    }
}

impl Extractor for Metadata {
    fn get(&self, key: &str) -> Option<&str> {
        Metadata::get(self, key)
    }

    fn keys(&self) -> Vec<&str> {
        Metadata::keys(self).collect()
    }
}

/// Writes `cx`'s trace context and baggage into `metadata` (nothing when `cx` has no valid
/// span).
pub fn inject(cx: &Context, metadata: &mut Metadata) {
    if cx.span().span_context().is_valid() {
        PROPAGATOR.inject_context(cx, metadata);
    }
}

/// Writes the current span's context into `metadata` (the innermost `tracing` or
/// `#[traced]` span, see [`current_context`](super::current_context)).
pub fn inject_current(metadata: &mut Metadata) {
    inject(&super::current_context(), metadata);
}

/// The context stored in `metadata`, as a remote parent (empty when there is none).
///
/// Never falls back to the caller's current context: a bad header must not silently
/// become "my own span".
#[must_use]
pub fn extract(metadata: &Metadata) -> Context {
    PROPAGATOR.extract_with_context(&Context::new(), metadata)
}

/// The span context stored in `metadata`, to link to; `None` (and the counter goes up) when
/// it is missing or malformed.
#[must_use]
pub fn stored_span_context(metadata: &Metadata) -> Option<SpanContext> {
    let Some(raw) = metadata.traceparent() else {
        count_invalid(&MISSING, "missing");
        return None;
    };
    let cx = extract(metadata);
    let span_context = cx.span().span_context().clone();
    if span_context.is_valid() {
        Some(span_context)
    } else {
        tracing::debug!(
            target: super::TARGET,
            traceparent = raw,
            "malformed stored trace context; starting a new root"
        );
        count_invalid(&MALFORMED, "malformed");
        None
    }
}

fn count_invalid(counter: &AtomicU64, reason: &'static str) {
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::add(
        Counter::TraceContextInvalid,
        1,
        [(attr::METRIC_ATTR_REASON, Attr::Static(reason))],
    );
}

/// How many consumed events had no stored trace context, since the process started.
#[must_use]
pub fn missing_context_count() -> u64 {
    MISSING.load(Ordering::Relaxed)
}

/// How many consumed events had a malformed stored trace context, since the process started.
#[must_use]
pub fn malformed_context_count() -> u64 {
    MALFORMED.load(Ordering::Relaxed)
}
