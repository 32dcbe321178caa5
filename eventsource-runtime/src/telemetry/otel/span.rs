//! The one way the runtime starts a span, for its components and `#[traced]` alike.
//!
//! - Under eventsource's layer ([`OtelLayer`](crate::telemetry::OtelLayer):
//!   `telemetry::init()`, `telemetry::layer()`, `testing::capture()`), on the OpenTelemetry
//!   SDK directly ([`DirectTracer`]), made the current OpenTelemetry context while its work
//!   runs. The subscriber's filter is asked first (target `eventsource`, level INFO).
//! - Under any other subscriber, an ordinary `tracing` span (target `eventsource`, named
//!   by `otel.name`), so an application's own `tracing-opentelemetry` setup exports the same
//!   span.
//! - With no subscriber, or a switch off, nothing is built and no attribute is formatted.
//!
//! A span is gathered and started by `SpanStart` (module `start`); this module holds the
//! started [`Span`], what runs inside it, and its attribute values.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Link, SpanId, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Array, Context, KeyValue, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::direct::{Attached, DirectTracer, Parent, Started};
use super::value::{key_values, otel_value};
use opentelemetry::propagation::Extractor;

use crate::telemetry::propagation::ContextCarrier;
use crate::telemetry::values::Attr;
use crate::telemetry::{attributes as attr, propagation, toggles};

/// A span of the runtime or of `#[traced]`: made on the SDK directly, a `tracing` span, or
/// nothing. Ended when dropped.
pub struct Span(Inner);

enum Inner {
    Off,
    Direct(DirectSpan),
    Tracing(tracing::Span),
}

/// A span made on the SDK and the context holding it; ended when dropped (also when its
/// work is cancelled).
struct DirectSpan {
    cx: Context,
    id: SpanId,
    /// Whether the span records (sampled): fixed when it starts, and asked of the span
    /// itself only through its lock.
    recording: bool,
}

impl Drop for DirectSpan {
    #[inline]
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

impl From<tracing::Span> for Span {
    #[inline]
    fn from(span: tracing::Span) -> Self {
        Self(Inner::Tracing(span))
    }
}

impl Span {
    /// No span: a switch is off, or nobody records.
    #[inline]
    #[must_use]
    pub fn none() -> Self {
        Self(Inner::Off)
    }

    /// Starts a span on `direct`.
    #[inline]
    pub(crate) fn start_direct(
        direct: &DirectTracer,
        name: Cow<'static, str>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
        parent: &Parent,
    ) -> Self {
        let Started { cx, id, recording } = direct.start(name, kind, attributes, links, parent);
        Self(Inner::Direct(DirectSpan { cx, id, recording }))
    }

    /// Whether nothing is recorded: no span, or a disabled `tracing` span.
    #[inline]
    pub(crate) fn is_disabled(&self) -> bool {
        match &self.0 {
            Inner::Off => true,
            Inner::Direct(_) => false,
            Inner::Tracing(span) => span.is_disabled(),
        }
    }

    /// Whether what is set now is kept (a span, sampled).
    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        match &self.0 {
            Inner::Off => false,
            Inner::Direct(direct) => direct.recording,
            Inner::Tracing(span) => !span.is_disabled(),
        }
    }

    /// Lets go of a disabled span. `tracing::Span::none()` owns nothing, so it is
    /// forgotten rather than run through `Span`'s out-of-line drop: the switched-off path of
    /// `#[traced]` stays a few instructions.
    #[inline(always)]
    pub(crate) fn release_disabled(self) {
        match self.0 {
            Inner::Tracing(span) if span.metadata().is_none() => std::mem::forget(span),
            inner => drop(inner),
        }
    }

    /// Sets an attribute.
    #[inline]
    pub(crate) fn set(&self, key: &'static str, value: Attr<'_>) {
        if self.is_recording() {
            self.set_value(key, otel_value(value));
        }
    }

    /// Sets an attribute given as OpenTelemetry's value.
    pub(crate) fn set_value(&self, key: &'static str, value: Value) {
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().set_attribute(KeyValue::new(key, value)),
            Inner::Tracing(span) => span.set_attribute(key, value),
        }
    }

    /// Sets a string array attribute, built straight from `items` (no list in between).
    pub(crate) fn set_str_array(
        &self,
        key: &'static str,
        items: impl IntoIterator<Item = &'static str>,
    ) {
        if self.is_recording() {
            let items = items.into_iter().map(Into::into).collect();
            self.set_value(key, Value::Array(Array::String(items)));
        }
    }

    /// Adds a span event.
    pub(crate) fn add_event(&self, name: &'static str, attributes: &[(&'static str, Attr<'_>)]) {
        if !self.is_recording() {
            return;
        }
        let attributes = key_values(attributes);
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().add_event(name, attributes),
            Inner::Tracing(span) => span.add_event(name, attributes),
        }
    }

    /// Status ERROR described by `message`, `error.type`, and exactly one `exception` span
    /// event with `exception.type` (the same type) and `exception.message`.
    pub(crate) fn record_error(&self, error_type: &str, message: &(impl Display + ?Sized)) {
        if !self.is_recording() {
            return;
        }
        self.set(attr::ERROR_TYPE, Attr::Str(error_type));
        let message = message.to_string();
        self.add_event(
            attr::SPAN_EVENT_EXCEPTION,
            &[
                (attr::EXCEPTION_TYPE, Attr::Str(error_type)),
                (attr::EXCEPTION_MESSAGE, Attr::Str(&message)),
            ],
        );
        self.set_status(Status::error(message));
    }

    /// Records a panic as an error (type `panic`).
    pub(crate) fn record_panic(&self, payload: &(dyn std::any::Any + Send)) {
        self.record_error(attr::EXCEPTION_TYPE_PANIC, crate::panic::message(payload));
    }

    /// Status ERROR described by `description`, without an `exception` event (the error
    /// was reported on a child span).
    pub(crate) fn set_error(&self, description: &(impl Display + ?Sized)) {
        if self.is_recording() {
            self.set_status(Status::error(description.to_string()));
        }
    }

    fn set_status(&self, status: Status) {
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().set_status(status),
            Inner::Tracing(span) => span.set_status(status),
        }
    }

    /// Writes this span's W3C context (and baggage) into `carrier`; with no span of its own,
    /// the current span's, so that consumers still join the caller's trace.
    pub(crate) fn inject(&self, carrier: &mut impl ContextCarrier) {
        self.with_propagated_context(|cx| propagation::inject(cx, carrier));
    }

    /// [`inject`](Self::inject) into each of `carriers` that has no `traceparent` of its
    /// own, the context read once for all of them.
    pub(crate) fn inject_each<'m, C: ContextCarrier + 'm>(
        &self,
        carriers: impl Iterator<Item = &'m mut C>,
    ) {
        self.with_propagated_context(|cx| propagation::inject_each(cx, carriers));
    }

    /// Hands `write` the context to propagate: the span's own, or, with no span of its own,
    /// the current one (nothing when the process switch is off).
    fn with_propagated_context(&self, write: impl FnOnce(&Context)) {
        match &self.0 {
            Inner::Off if toggles::is_enabled() => write(&crate::telemetry::current_context()),
            Inner::Off => {}
            Inner::Direct(direct) => write(&direct.cx),
            Inner::Tracing(span) => write(&span.context()),
        }
    }

    /// Runs `work` inside the span: the span is current whenever `work` is polled.
    #[inline]
    pub(crate) fn run<F: Future>(&self, work: F) -> InSpan<'_, F> {
        InSpan { span: self, work }
    }

    /// Runs `work` (which does not wait) inside the span: [`run`](Self::run) without a
    /// future.
    #[inline]
    pub(crate) fn in_scope<R>(&self, work: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        work()
    }

    /// Makes the span current until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        match &self.0 {
            Inner::Off => Entered::Off,
            Inner::Tracing(span) => Entered::Tracing {
                _guard: span.enter(),
            },
            Inner::Direct(direct) => Entered::Direct {
                _guard: Attached::new(&direct.cx, direct.id),
            },
        }
    }
}

/// The guard of [`Span::enter`]: nothing to undo for no span (entered at every poll of
/// every span's work, so the case without a span owns nothing to drop).
pub(crate) enum Entered<'a> {
    Off,
    Tracing { _guard: tracing::span::Entered<'a> },
    Direct { _guard: Attached },
}

pin_project_lite::pin_project! {
    /// [`Span::run`]'s future: `work`, polled with the span current. (One struct holding
    /// `work` once, rather than an `async fn` whose every branch kept its own copy of it.)
    pub(crate) struct InSpan<'a, F> {
        span: &'a Span,
        #[pin]
        work: F,
    }
}

impl<F: Future> Future for InSpan<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        this.work.poll(cx)
    }
}

/// Measures a duration for the metrics, when the process switch is on.
pub(crate) struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Starts measuring.
    #[inline]
    pub(crate) fn start() -> Self {
        Self(toggles::is_enabled().then(Instant::now))
    }

    /// The time since [`start`](Self::start) (zero when nothing was measured).
    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        self.0.map_or(Duration::ZERO, |started| started.elapsed())
    }
}

/// Runs `work` with the trace context stored in `carrier` (an event's metadata) as the
/// current context, so the spans it starts continue that trace: a relay publishing a stored
/// event continues the command that stored it. Without a valid stored context, or with the
/// process switch off, `work` simply runs.
pub(crate) async fn in_stored_context<F: Future>(
    carrier: &(dyn Extractor + Sync),
    work: F,
) -> F::Output {
    if !toggles::is_enabled() {
        return work.await;
    }
    let cx = propagation::extract(carrier);
    if !cx.span().span_context().is_valid() {
        return work.await;
    }
    WithContext {
        cx,
        work: pin!(work),
    }
    .await
}

/// Polls a pinned future with a context current.
struct WithContext<'a, F> {
    cx: Context,
    work: Pin<&'a mut F>,
}

impl<F: Future> Future for WithContext<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _attached = self.cx.clone().attach();
        self.work.as_mut().poll(task)
    }
}
