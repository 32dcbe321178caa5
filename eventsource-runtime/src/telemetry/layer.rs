//! The `tracing` layer of [`init`](super::init) and [`testing`](crate::testing): the
//! `tracing-opentelemetry` layer, plus a direct path for `#[traced]` spans.
//!
//! A span made through `tracing` + `tracing-opentelemetry` costs about twice what the same
//! span costs on the OpenTelemetry SDK directly (the registry's bookkeeping and the
//! layer's span builder, per span; see the `overhead` bench). Where the subscriber carries
//! [`OtelLayer`], `#[traced]` starts its span on the SDK tracer directly and makes it the
//! current OpenTelemetry context while the body runs, instead of creating a `tracing` span.
//! Nesting holds both ways because the layer activates each `tracing` span's context on
//! entry (`tracing-opentelemetry`'s context activation, on by default):
//!
//! - a `#[traced]` span takes the current OpenTelemetry context as its parent, which is the
//!   innermost entered `tracing` span or `#[traced]` span, whichever is newer;
//! - a `tracing` span created in a `#[traced]` body takes the same current context as its
//!   parent, so it is a child of the `#[traced]` span;
//! - a `tracing` event in a `#[traced]` body is recorded as a span event on the `#[traced]`
//!   span (this layer redirects it), and log lines carry its trace and span ids.
//!
//! What differs: `tracing::Span::current()` in a `#[traced]` body is the caller's `tracing`
//! span, not the function's span. Use [`telemetry::set_attribute`](super::set_attribute)
//! and [`telemetry::current_context`](super::current_context) (or
//! `opentelemetry::Context::current()`) there, which see the innermost span of either kind.
//!
//! Without this layer (an application with its own `tracing-opentelemetry` setup, or only a
//! log subscriber), `#[traced]` makes ordinary `tracing` spans.

use std::any::TypeId;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use opentelemetry::trace::{SpanBuilder, SpanId, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

/// The `tracing-opentelemetry` layer with this crate's settings, plus the direct path of
/// `#[traced]` spans. Made by [`layer`](super::layer()); `telemetry::init()` and
/// `testing::capture()` install it.
///
/// Under this layer, `#[traced]` starts its span on the OpenTelemetry SDK tracer directly
/// and makes it the current OpenTelemetry context while the body runs, instead of creating
/// a `tracing` span: that costs about half as much per span (the `overhead` bench).
/// Nesting holds both ways, through the OpenTelemetry context the layer activates on each
/// `tracing` span's entry:
///
/// - a `#[traced]` span's parent is the innermost entered `tracing` span or `#[traced]`
///   span, whichever is newer;
/// - a `tracing` span created in a `#[traced]` body is a child of the `#[traced]` span;
/// - a `tracing` event in a `#[traced]` body is a span event of the `#[traced]` span, and
///   log lines carry its trace and span ids;
/// - filters apply: a `#[traced]` span is made only when the subscriber is interested in
///   an INFO span at its callsite (`tracing::enabled!`). A per-layer filter counts through
///   the callsite's interest: with `telemetry::init()`'s filters, `RUST_LOG` directives
///   drop `#[traced]` spans as they drop other spans.
///
/// What differs: `tracing::Span::current()` in a `#[traced]` body is the caller's `tracing`
/// span. Use [`telemetry::set_attribute`](super::set_attribute) and
/// [`telemetry::current_context`](super::current_context) there (or
/// `opentelemetry::Context::current()`), which see the innermost span of either kind.
/// Without this layer (an application's own `tracing-opentelemetry` setup, or only a log
/// subscriber), `#[traced]` makes ordinary `tracing` spans.
pub struct OtelLayer<S, T> {
    inner: OpenTelemetryLayer<S, T>,
    direct: DirectTracer,
}

impl<S, T> fmt::Debug for OtelLayer<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLayer").finish_non_exhaustive()
    }
}

impl<S, T> OtelLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    pub(crate) fn new(inner: OpenTelemetryLayer<S, T>, tracer: T) -> Self {
        Self {
            inner,
            direct: DirectTracer {
                tracer: Box::new(tracer),
            },
        }
    }
}

/// Starts spans on the tracer the layer exports through, for `#[traced]`'s direct path.
pub(crate) struct DirectTracer {
    tracer: Box<dyn StartSpan>,
}

/// A tracer with its span type erased.
trait StartSpan: Send + Sync {
    fn start(&self, builder: SpanBuilder, parent: &Context) -> Context;
}

impl<T> StartSpan for T
where
    T: opentelemetry::trace::Tracer + Send + Sync,
    T::Span: Send + Sync + 'static,
{
    #[inline]
    fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
        parent.with_span(self.build_with_context(builder, parent))
    }
}

impl DirectTracer {
    /// Starts a span as a child of the current OpenTelemetry context, and returns the
    /// context holding it.
    #[inline]
    pub(crate) fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let builder = SpanBuilder {
            name: Cow::Borrowed(name),
            span_kind: Some(kind),
            attributes: Some(attributes),
            ..SpanBuilder::default()
        };
        Context::map_current(|parent| self.tracer.start(builder, parent))
    }

    /// Runs `f` with the direct tracer of the current subscriber, if it has one.
    #[inline]
    pub(crate) fn with_current<R>(mut f: impl FnMut(Option<&Self>) -> R) -> R {
        tracing::dispatcher::get_default(|dispatch| f(dispatch.downcast_ref::<Self>()))
    }
}

thread_local! {
    /// The span id of the innermost `#[traced]` span attached on this thread (invalid: none).
    static DIRECT_CURRENT: Cell<SpanId> = const { Cell::new(SpanId::INVALID) };
}

/// Makes a direct span's context current until dropped.
pub(crate) struct Attached {
    _guard: opentelemetry::ContextGuard,
    previous: SpanId,
}

impl Attached {
    #[inline]
    pub(crate) fn new(cx: &Context, span_id: SpanId) -> Self {
        let guard = cx.clone().attach();
        let previous = DIRECT_CURRENT.with(|current| current.replace(span_id));
        Self {
            _guard: guard,
            previous,
        }
    }
}

impl Drop for Attached {
    #[inline]
    fn drop(&mut self) {
        DIRECT_CURRENT.with(|current| current.set(self.previous));
    }
}

/// Runs `f` on the current OpenTelemetry context when its span is a `#[traced]` span made
/// on the direct path (newer than any entered `tracing` span); `None` otherwise.
#[inline]
pub(crate) fn with_direct_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    let direct = DIRECT_CURRENT.with(Cell::get);
    if direct == SpanId::INVALID {
        return None;
    }
    Context::map_current(|cx| (cx.span().span_context().span_id() == direct).then(|| f(cx)))
}

/// The span id of the current direct span, if it is the innermost span (invalid: none).
#[inline]
pub(crate) fn direct_current_id() -> SpanId {
    with_direct_current(|cx| cx.span().span_context().span_id()).unwrap_or(SpanId::INVALID)
}

/// Records a `tracing` event on the current direct span as `tracing-opentelemetry` would
/// on a `tracing` span: named by its message, with `level`, `target` and its fields; an
/// ERROR event sets the status to ERROR.
fn record_event(cx: &Context, event: &Event<'_>) {
    let meta = event.metadata();
    let mut visitor = EventVisitor {
        name: None,
        attributes: vec![
            KeyValue::new("level", meta.level().as_str()),
            KeyValue::new("target", meta.target().to_owned()),
        ],
    };
    event.record(&mut visitor);
    let span = cx.span();
    if *meta.level() == tracing::Level::ERROR {
        span.set_status(Status::error(""));
    }
    let name = visitor.name.unwrap_or_else(|| meta.name().to_owned());
    span.add_event(name, visitor.attributes);
}

struct EventVisitor {
    name: Option<String>,
    attributes: Vec<KeyValue>,
}

impl EventVisitor {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.name = Some(value.as_str().into_owned());
        } else {
            self.attributes.push(KeyValue::new(field.name(), value));
        }
    }
}

impl Visit for EventVisitor {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, i64::try_from(value).unwrap_or(i64::MAX).into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}").into());
    }
}

impl<S, T> tracing_subscriber::Layer<S> for OtelLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        // An event in a `#[traced]` body belongs to that span, which `tracing` does not
        // know about; an explicit parent is the caller's choice.
        if event.is_contextual() && with_direct_current(|cx| record_event(cx, event)).is_some() {
            return;
        }
        self.inner.on_event(event, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else if id == TypeId::of::<DirectTracer>() {
            Some(std::ptr::from_ref(&self.direct).cast())
        } else {
            // SAFETY: forwarded as is; the inner layer answers for its own types (the
            // `tracing-opentelemetry` span extensions find it this way).
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}
