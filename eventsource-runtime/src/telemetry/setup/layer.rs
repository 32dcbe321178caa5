//! Eventsource's `tracing` layer: the `tracing-opentelemetry` layer, plus the direct path
//! of the runtime's spans and `#[traced]` spans (see `otel::direct`).

use std::any::TypeId;
use std::fmt;

use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::otel::direct::{DirectTracer, with_direct_current};

/// The `tracing-opentelemetry` layer with this crate's settings, plus the direct path of
/// the runtime's spans and `#[traced]` spans. Made by [`layer`](crate::telemetry::layer());
/// `telemetry::init()` and `testing::capture()` install it.
///
/// Under this layer, the spans of the runtime's components (command, repository, stores,
/// bus, projections, queries) and of `#[traced]` are started on the OpenTelemetry SDK
/// tracer directly and made the current OpenTelemetry context while their work runs,
/// instead of being `tracing` spans: that costs a fraction of a `tracing` span (the
/// `overhead` and `command` benches). Nesting holds both ways, through the OpenTelemetry
/// context the layer activates on each `tracing` span's entry:
///
/// - such a span's parent is the innermost entered `tracing` span or direct span,
///   whichever is newer;
/// - a `tracing` span created while it runs (in a `#[traced]` body, a projection handler,
///   an event handler) is its child;
/// - a `tracing` event while it runs is a span event of it, and log lines carry its trace
///   and span ids;
/// - filters apply: a `#[traced]` span is made only when the subscriber is interested in
///   an INFO span at its callsite (`tracing::enabled!`), a runtime span only when it is
///   interested in an INFO span of the target `eventsource`. With `telemetry::init()`'s
///   filters, `RUST_LOG` directives drop them as they drop other spans.
///
/// What differs: `tracing::Span::current()` there is the caller's `tracing` span. Use
/// [`telemetry::set_attribute`](crate::telemetry::set_attribute) and
/// [`telemetry::current_context`](crate::telemetry::current_context) (or
/// `opentelemetry::Context::current()`), which see the innermost span of either kind.
/// Without this layer (an application's own `tracing-opentelemetry` setup, or only a log
/// subscriber), the same spans are ordinary `tracing` spans.
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
    fn new(inner: OpenTelemetryLayer<S, T>, tracer: T) -> Self {
        Self {
            inner,
            direct: DirectTracer::new(tracer),
        }
    }

    /// Starts the runtime's own spans (its components' and `#[traced]`'s) on `tracer`
    /// instead of the layer's: give it the library's
    /// [instrumentation scope](crate::telemetry::instrumentation_scope), and keep the
    /// layer's tracer for the application's `tracing` spans. (`telemetry::init()` does.)
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use eventsource_runtime::telemetry;
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = telemetry::layer(provider.tracer("my-app"))
    ///     .with_library_tracer(provider.tracer_with_scope(telemetry::instrumentation_scope()));
    /// let _subscriber = tracing_subscriber::registry().with(layer);
    /// ```
    #[must_use]
    pub fn with_library_tracer<L>(self, tracer: L) -> Self
    where
        L: opentelemetry::trace::Tracer + Send + Sync + 'static,
        L::Span: Send + Sync + 'static,
    {
        Self {
            inner: self.inner,
            direct: DirectTracer::new(tracer),
        }
    }
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
        // The OpenTelemetry crates' own log lines (their `internal-logs`) are about the
        // pipeline, not the user's work: they go to the log lines, never onto a span.
        if event.metadata().target().starts_with("opentelemetry") {
            return;
        }
        // An event while a direct span runs belongs to that span, which `tracing` does not
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

    #[allow(
        unsafe_code,
        reason = "the trait's own method: how tracing-opentelemetry finds its layer"
    )]
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

/// The `tracing-opentelemetry` layer with this crate's settings, for a custom subscriber,
/// plus the direct path of the runtime's and `#[traced]`'s spans (see [`OtelLayer`]).
///
/// Location, thread, target and inactivity tracking are off: they cost about a third of a
/// span's price and the contract does not use them. Context activation stays on (the
/// default): the direct path and log lines rely on it.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(eventsource_runtime::telemetry::layer(provider.tracer("my-app")));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!("work").in_scope(|| {});
/// });
/// ```
pub fn layer<S, T>(tracer: T) -> OtelLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + Clone + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    let inner = tracing_opentelemetry::layer()
        .with_tracer(tracer.clone())
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    OtelLayer::new(inner, tracer)
}
