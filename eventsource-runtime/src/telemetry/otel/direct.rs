//! Spans started on the OpenTelemetry SDK directly, under eventsource's layer.
//!
//! A span made through `tracing` + `tracing-opentelemetry` costs about four times what the
//! same span costs on the SDK directly (the registry's bookkeeping and the layer's span
//! builder, per span; see the `overhead` and `command` benches). Where the subscriber
//! carries [`OtelLayer`](crate::telemetry::OtelLayer), the layer answers a downcast to
//! [`DirectTracer`], and spans are started on its tracer and made the current
//! OpenTelemetry context while their work runs ([`Attached`]). `tracing` spans nest with
//! them both ways through that context (the layer activates each `tracing` span's context
//! on entry).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use opentelemetry::trace::{SpanBuilder, SpanId, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

/// Starts spans on the tracer the layer exports through. Cloned (a reference count) by a
/// span being gathered, so that starting it needs no second look at the subscriber.
#[derive(Clone)]
pub(crate) struct DirectTracer {
    tracer: Arc<dyn StartSpan>,
}

/// A tracer with its span type erased.
trait StartSpan: Send + Sync {
    fn start(&self, builder: SpanBuilder, parent: &Context) -> Started;
}

/// A span started: the context holding it, its id, and whether it records (read before
/// the span is shared, so without taking its lock).
pub(crate) struct Started {
    pub(crate) cx: Context,
    pub(crate) id: SpanId,
    pub(crate) recording: bool,
}

impl<T> StartSpan for T
where
    T: opentelemetry::trace::Tracer + Send + Sync,
    T::Span: Send + Sync + 'static,
{
    #[inline]
    fn start(&self, builder: SpanBuilder, parent: &Context) -> Started {
        use opentelemetry::trace::Span as _;
        let span = self.build_with_context(builder, parent);
        let id = span.span_context().span_id();
        let recording = span.is_recording();
        Started {
            cx: parent.with_span(span),
            id,
            recording,
        }
    }
}

/// Where a new span hangs.
pub(crate) enum Parent {
    /// The current OpenTelemetry context's span (none: a new trace).
    Current,
    /// Nothing: a new trace.
    Root,
    /// A context from elsewhere (message headers).
    Remote(Context),
}

impl DirectTracer {
    pub(crate) fn new<T>(tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self {
            tracer: Arc::new(tracer),
        }
    }

    /// Starts a span.
    #[inline]
    pub(crate) fn start(
        &self,
        name: Cow<'static, str>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        links: Vec<opentelemetry::trace::Link>,
        parent: &Parent,
    ) -> Started {
        let builder = SpanBuilder {
            name,
            span_kind: Some(kind),
            attributes: Some(attributes),
            links: (!links.is_empty()).then_some(links),
            ..SpanBuilder::default()
        };
        match parent {
            Parent::Current => Context::map_current(|cx| self.tracer.start(builder, cx)),
            Parent::Root => self.tracer.start(builder, &Context::new()),
            Parent::Remote(cx) => self.tracer.start(builder, cx),
        }
    }

    /// Runs `f` with the direct tracer of the current subscriber, if it has one.
    #[inline]
    pub(crate) fn with_current<R>(mut f: impl FnMut(Option<&Self>) -> R) -> R {
        tracing::dispatcher::get_default(|dispatch| f(dispatch.downcast_ref::<Self>()))
    }
}

thread_local! {
    /// The span id of the innermost direct span attached on this thread (invalid: none).
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

/// Runs `f` on the current OpenTelemetry context when its span is a direct span (newer
/// than any entered `tracing` span); `None` otherwise.
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
