//! The current span, whichever way it was made (a `tracing` span, or a span started on the
//! SDK directly under eventsource's layer): [`set_attribute`] and [`current_context`].

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceContextExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::otel::direct::{direct_current_id, with_direct_current};

/// Sets an attribute on the current span, whether or not its key was declared when the
/// span was created. Does nothing when no span is being recorded.
///
/// The current span is the innermost one: a `tracing` span, a `#[traced]` span or a span
/// of the runtime (which, under eventsource's layer, are not `tracing` spans: see
/// [`layer`](super::layer())). In the body of a `#[traced]` function whose span is
/// switched off, it does nothing: the attribute was meant for that function's span, not
/// for its caller's.
///
/// ```
/// eventsource_runtime::telemetry::set_attribute("order.priority", "express");
/// eventsource_runtime::telemetry::set_attribute("order.lines", 3_i64);
/// ```
pub fn set_attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    let value = value.into();
    let direct = with_direct_current(|cx| {
        let span = cx.span();
        let id = span.span_context().span_id();
        if !is_untraced_direct_caller(id) {
            span.set_attribute(opentelemetry::KeyValue::new(key, value.clone()));
        }
    });
    if direct.is_some() {
        return;
    }
    let span = tracing::Span::current();
    if span.is_disabled() || span.id().is_some_and(|id| is_untraced_caller(&id)) {
        return;
    }
    span.set_attribute(key, value);
}

/// The OpenTelemetry context of the current span: the innermost `tracing` span, `#[traced]`
/// span or span of the runtime. Use it to propagate the context by hand (into an HTTP
/// request's headers, say); `tracing::Span::current().context()` does not see the spans
/// eventsource's layer makes.
///
/// ```
/// use opentelemetry::trace::TraceContextExt as _;
///
/// let cx = eventsource_runtime::telemetry::current_context();
/// assert!(!cx.span().span_context().is_valid(), "no span outside of any");
/// ```
#[must_use]
pub fn current_context() -> opentelemetry::Context {
    with_direct_current(Clone::clone).unwrap_or_else(|| tracing::Span::current().context())
}

thread_local! {
    /// While the body of a `#[traced]` function whose span is off runs on this thread: the
    /// id (`Id::into_u64`) of the `tracing` span that was current when it started (0: none).
    static UNTRACED_CALLER: Cell<u64> = const { Cell::new(0) };
    /// The same for a span made on the direct path (invalid: none).
    static UNTRACED_DIRECT_CALLER: Cell<SpanId> = const { Cell::new(SpanId::INVALID) };
}

/// Whether `span` is the caller of a switched-off `#[traced]` body running now on this
/// thread, with no span of its own in between: [`set_attribute`] called there means the
/// function's own span, which does not exist, so it must not land on the caller's.
#[inline]
fn is_untraced_caller(span: &tracing::Id) -> bool {
    let caller = UNTRACED_CALLER.with(Cell::get);
    caller != 0 && caller == span.into_u64()
}

/// [`is_untraced_caller`] for a span made on the direct path.
#[inline]
fn is_untraced_direct_caller(span: SpanId) -> bool {
    let caller = UNTRACED_DIRECT_CALLER.with(Cell::get);
    caller != SpanId::INVALID && caller == span
}

/// Marks the current span as an untraced body's caller until dropped (panics included).
/// Costs one relaxed atomic load when no `tracing` subscriber was ever set.
pub(crate) struct UntracedCaller(Option<(u64, SpanId)>);

impl UntracedCaller {
    #[inline]
    pub(crate) fn enter() -> Self {
        if tracing::dispatcher::has_been_set() {
            Self(Some(Self::mark()))
        } else {
            Self(None)
        }
    }

    /// Marks the current spans; returns the previous marks.
    #[inline(never)]
    fn mark() -> (u64, SpanId) {
        let current = tracing::dispatcher::get_default(|d| {
            d.current_span().id().map_or(0, tracing::Id::into_u64)
        });
        let direct = direct_current_id();
        (
            UNTRACED_CALLER.with(|c| c.replace(current)),
            UNTRACED_DIRECT_CALLER.with(|c| c.replace(direct)),
        )
    }
}

impl Drop for UntracedCaller {
    #[inline]
    fn drop(&mut self) {
        if let Some((previous, previous_direct)) = self.0 {
            UNTRACED_CALLER.with(|c| c.set(previous));
            UNTRACED_DIRECT_CALLER.with(|c| c.set(previous_direct));
        }
    }
}
