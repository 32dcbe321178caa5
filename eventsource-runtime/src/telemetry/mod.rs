//! Telemetry: spans, metrics and W3C propagation, as specified by the telemetry contract.
//!
//! - [`attributes`]: every key, span name and metric name, as constants;
//! - [`toggles`]: the process-wide switch (`EVENTSOURCE_TRACING=off`) and the projection
//!   override; components have their own `enable_tracing`;
//! - [`propagation`]: trace context in event metadata;
//! - [`spans`]: the runtime components' spans and error recording;
//! - [`metrics`]: the contract's instruments;
//! - `init()`: one-call setup for applications.
//!
//! Everything but [`toggles`] needs the `tracing` feature (on by default).

pub mod config;
pub mod toggles;

#[cfg(feature = "tracing")]
pub mod attributes;
#[cfg(feature = "tracing")]
pub mod metrics;
#[cfg(feature = "tracing")]
pub mod propagation;
#[cfg(feature = "tracing")]
pub mod spans;

#[cfg(feature = "tracing")]
mod console;
#[cfg(feature = "tracing")]
mod init;
#[cfg(feature = "tracing")]
pub(crate) mod layer;

#[cfg(feature = "tracing")]
pub use console::ConsoleExporter;
#[cfg(feature = "tracing")]
pub use init::{InitError, Telemetry, TelemetryBuilder, TelemetryGuard, init};
#[cfg(feature = "tracing")]
pub use layer::OtelLayer;

pub use toggles::{is_enabled, set_enabled};

/// Sets an attribute on the current span, whether or not its key was declared when the
/// span was created. Does nothing when no span is being recorded.
///
/// The current span is the innermost one, a `tracing` span or a `#[traced]` span (which,
/// under eventsource's layer, is not a `tracing` span: see [`layer`](self::layer())).
/// In the body of a `#[traced]` function whose span is switched off, it does nothing:
/// the attribute was meant for that function's span, not for its caller's.
///
/// ```
/// eventsource_runtime::telemetry::set_attribute("order.priority", "express");
/// eventsource_runtime::telemetry::set_attribute("order.lines", 3_i64);
/// ```
#[cfg(feature = "tracing")]
pub fn set_attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let value = value.into();
    let direct = layer::with_direct_current(|cx| {
        let span = cx.span();
        let id = span.span_context().span_id();
        if !crate::__private::traced::is_untraced_direct_caller(id) {
            span.set_attribute(opentelemetry::KeyValue::new(key, value.clone()));
        }
    });
    if direct.is_some() {
        return;
    }
    let span = tracing::Span::current();
    if span.is_disabled()
        || span
            .id()
            .is_some_and(|id| crate::__private::traced::is_untraced_caller(&id))
    {
        return;
    }
    span.set_attribute(key, value);
}

/// The OpenTelemetry context of the current span: the innermost `tracing` span or
/// `#[traced]` span. Use it to propagate the context by hand (into an HTTP request's
/// headers, say); `tracing::Span::current().context()` does not see a `#[traced]` span
/// made by eventsource's layer.
///
/// ```
/// use opentelemetry::trace::TraceContextExt as _;
///
/// let cx = eventsource_runtime::telemetry::current_context();
/// assert!(!cx.span().span_context().is_valid(), "no span outside of any");
/// ```
#[cfg(feature = "tracing")]
#[must_use]
pub fn current_context() -> opentelemetry::Context {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    layer::with_direct_current(Clone::clone).unwrap_or_else(|| tracing::Span::current().context())
}

/// The `tracing-opentelemetry` layer with this crate's settings, for a custom subscriber,
/// plus the direct path of `#[traced]` spans (see [`OtelLayer`]).
///
/// Location, thread, target and inactivity tracking are off: they cost about a third of a
/// span's price and the contract does not use them. Context activation stays on (the
/// default): `#[traced]` spans and log lines rely on it.
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
#[cfg(feature = "tracing")]
pub fn layer<S, T>(tracer: T) -> OtelLayer<S, T>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
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
