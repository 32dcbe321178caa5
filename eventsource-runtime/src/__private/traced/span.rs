//! The span of one `#[traced]` call: a `tracing` span, or a span made on the OpenTelemetry
//! SDK directly (see `telemetry::layer`).

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry::layer::{Attached, DirectTracer};
use crate::telemetry::spans;

/// The span of one `#[traced]` call.
pub struct TracedSpan {
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    /// A `tracing` span (disabled when a switch is off or no subscriber wants it).
    Tracing(Span),
    /// A span on the SDK, current (as the OpenTelemetry context) while the body runs.
    Direct(DirectSpan),
}

impl TracedSpan {
    /// No span: a switch is off.
    #[inline]
    #[must_use]
    pub fn none() -> Self {
        Self {
            kind: Kind::Tracing(Span::none()),
        }
    }

    /// Whether nothing is recorded (a disabled `tracing` span).
    #[inline]
    pub(super) fn is_disabled(&self) -> bool {
        match &self.kind {
            Kind::Tracing(span) => span.is_disabled(),
            Kind::Direct(_) => false,
        }
    }

    /// Whether attributes set now are kept (not disabled, and sampled).
    pub(super) fn is_recording(&self) -> bool {
        match &self.kind {
            Kind::Tracing(span) => !span.is_disabled(),
            Kind::Direct(direct) => direct.cx.span().is_recording(),
        }
    }

    /// Lets go of a disabled span. `Span::none()` (no callsite, no subscriber data) owns
    /// nothing, so it is forgotten rather than run through `Span`'s out-of-line drop: the
    /// switched-off path stays a few instructions. Any other disabled span is dropped as
    /// usual (with `tracing`'s `log` feature its drop may write a log record).
    #[inline(always)]
    pub(super) fn release_disabled(self) {
        match self.kind {
            Kind::Tracing(span) if span.metadata().is_none() => std::mem::forget(span),
            kind => drop(kind),
        }
    }

    /// Sets an attribute.
    pub(super) fn set_attribute(&self, key: &'static str, value: impl Into<Value>) {
        match &self.kind {
            Kind::Tracing(span) => span.set_attribute(key, value),
            Kind::Direct(direct) => direct.cx.span().set_attribute(KeyValue::new(key, value)),
        }
    }

    /// Status ERROR described by `error`'s `Display`, and exactly one `exception` event.
    pub(super) fn record_error(&self, error_type: &str, error: &(impl Display + ?Sized)) {
        match &self.kind {
            Kind::Tracing(span) => spans::record_error(span, error_type, error),
            Kind::Direct(direct) => {
                let span = direct.cx.span();
                if span.is_recording() {
                    let (event, status) = spans::exception(error_type, error);
                    span.add_event(spans::EXCEPTION_EVENT, event);
                    span.set_status(status);
                }
            }
        }
    }

    /// Records a panic as an error (type `panic`).
    pub(super) fn record_panic(&self, payload: &(dyn Any + Send)) {
        self.record_error("panic", &spans::panic_message(payload));
    }
}

impl From<Span> for TracedSpan {
    #[inline]
    fn from(span: Span) -> Self {
        Self {
            kind: Kind::Tracing(span),
        }
    }
}

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
    let mut attributes = kept;
    DirectTracer::with_current(|direct| match direct {
        Some(direct) => {
            let cx = direct.start(name, kind.clone(), std::mem::take(&mut attributes));
            let id = cx.span().span_context().span_id();
            TracedSpan {
                kind: Kind::Direct(DirectSpan { cx, id }),
            }
        }
        None => TracedSpan::none(),
    })
}

/// A span made on the SDK and the context holding it; ended when dropped (also when the
/// call is cancelled).
pub(super) struct DirectSpan {
    cx: Context,
    id: SpanId,
}

impl DirectSpan {
    /// Makes the span the current OpenTelemetry context until the guard is dropped.
    #[inline]
    pub(super) fn attach(&self) -> Attached {
        Attached::new(&self.cx, self.id)
    }
}

impl Drop for DirectSpan {
    #[inline]
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// Polls a pinned body with a direct span current.
pub(super) struct WithDirect<'a, F> {
    span: &'a DirectSpan,
    body: Pin<&'a mut F>,
}

impl<'a, F> WithDirect<'a, F> {
    pub(super) fn new(span: &'a DirectSpan, body: Pin<&'a mut F>) -> Self {
        Self { span, body }
    }
}

impl<F: Future> Future for WithDirect<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _attached = self.span.attach();
        self.body.as_mut().poll(cx)
    }
}
