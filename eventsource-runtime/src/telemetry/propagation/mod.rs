//! W3C trace context (`traceparent`, `tracestate`) and `baggage` in what events and
//! messages carry.
//!
//! At append time the current span's context is written into each event's metadata;
//! whoever consumes the event later (a projection, a bus consumer, after a restart) links to
//! it. The trace context is written as OpenTelemetry's `TraceContextPropagator` writes it;
//! the baggage by [`W3cBaggagePropagator`], which encodes values so that they read back
//! unchanged after any number of hops (OpenTelemetry's leaves `%` bare). A carrier the runtime writes into is
//! a [`ContextCarrier`] (an event's metadata is one: it writes the common case in the form
//! the stores keep); one it reads from is any [`Extractor`]. Missing or malformed context
//! is no error: the consumer starts a new root and the `eventsource.trace_context.invalid`
//! counter goes up.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;

mod baggage;

pub use baggage::W3cBaggagePropagator;

// Our own propagator, not the global one: the global default is a no-op until an
// application installs one, and stored context must not depend on that.
pub(crate) static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);

/// The W3C propagators, trace context and baggage ([`W3cBaggagePropagator`]): what the
/// runtime stores and sends, and what `telemetry::init()` installs as the global
/// propagator. With an OpenTelemetry set-up of your own, install it yourself, so that what
/// your HTTP layer reads and writes carries baggage values as the runtime does:
///
/// ```
/// opentelemetry::global::set_text_map_propagator(
///     eventsource_runtime::telemetry::propagation::propagator(),
/// );
/// ```
#[must_use]
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(W3cBaggagePropagator::new()),
    ])
}

static MISSING: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// What the runtime writes a span's context into: an event's metadata (`event::Metadata`).
pub trait ContextCarrier: Injector + Sized {
    /// Writes `cx`'s trace context and baggage (nothing when `cx` has no valid span),
    /// replacing the trace context the carrier had (a `tracestate` without `cx`'s is
    /// removed). The default writes what OpenTelemetry's propagators write.
    fn inject_context(&mut self, cx: &Context) {
        if cx.span().span_context().is_valid() {
            PROPAGATOR.inject_context(cx, self);
        }
    }

    /// [`inject_context`](Self::inject_context) into each of `carriers` that has no trace
    /// context of its own (an append's events); the default writes into each.
    fn inject_each<'m>(cx: &Context, carriers: impl Iterator<Item = &'m mut Self>)
    where
        Self: 'm,
    {
        for carrier in carriers {
            carrier.inject_context(cx);
        }
    }
}

/// Writes `cx`'s trace context and baggage into `carrier` (an event's metadata): see
/// [`ContextCarrier::inject_context`].
pub fn inject(cx: &Context, carrier: &mut impl ContextCarrier) {
    carrier.inject_context(cx);
}

/// [`inject`] into each of `carriers` that has no trace context of its own.
pub(crate) fn inject_each<'m, C: ContextCarrier + 'm>(
    cx: &Context,
    carriers: impl Iterator<Item = &'m mut C>,
) {
    C::inject_each(cx, carriers);
}

/// Writes the current span's context into `carrier` (the innermost `tracing` or
/// `#[traced]` span, see [`current_context`](super::current_context)).
pub fn inject_current(carrier: &mut impl ContextCarrier) {
    inject(&super::current_context(), carrier);
}

/// The W3C `baggage` of `cx`, written into `carrier`.
pub(crate) fn inject_baggage(cx: &Context, carrier: &mut dyn Injector) {
    W3cBaggagePropagator::new().inject_context(cx, carrier);
}

/// The context stored in `carrier` (an event's metadata, a message's headers), as a remote
/// parent (empty when there is none).
///
/// Never falls back to the caller's current context: a bad header must not silently
/// become "my own span".
#[must_use]
pub fn extract(carrier: &dyn Extractor) -> Context {
    PROPAGATOR.extract_with_context(&Context::new(), carrier)
}

/// The span context stored in `carrier`, to link to; `None` (and
/// [`missing_context_count`] or [`malformed_context_count`] goes up) when it is missing or
/// malformed.
#[must_use]
pub fn stored_span_context(carrier: &dyn Extractor) -> Option<SpanContext> {
    stored_context(carrier)
        .ok()
        .map(|cx| cx.span().span_context().clone())
}

/// Why a carrier held no usable trace context.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InvalidContext {
    Missing,
    Malformed,
}

impl InvalidContext {
    /// The `reason` attribute of `eventsource.trace_context.invalid`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
        }
    }
}

/// The context stored in `carrier` (its span context and baggage), extracted once, or why
/// there is none (counted here; the span that consumes the carrier records the metric).
pub(crate) fn stored_context(carrier: &dyn Extractor) -> Result<Context, InvalidContext> {
    let Some(raw) = carrier.get("traceparent") else {
        MISSING.fetch_add(1, Ordering::Relaxed);
        return Err(InvalidContext::Missing);
    };
    let cx = extract(carrier);
    if cx.span().span_context().is_valid() {
        Ok(cx)
    } else {
        tracing::debug!(
            target: super::TARGET,
            traceparent = raw,
            "malformed stored trace context; starting a new root"
        );
        MALFORMED.fetch_add(1, Ordering::Relaxed);
        Err(InvalidContext::Malformed)
    }
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
