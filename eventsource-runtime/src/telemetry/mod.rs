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
pub use console::ConsoleExporter;
#[cfg(feature = "tracing")]
pub use init::{InitError, Telemetry, TelemetryBuilder, TelemetryGuard, init};

pub use toggles::{is_enabled, set_enabled};

/// Sets an attribute on the current span, whether or not its key was declared when the
/// span was created. Does nothing when no span is being recorded.
///
/// In the body of a `#[traced]` function whose span is switched off, it does nothing
/// either: the attribute was meant for that function's span, not for its caller's.
///
/// ```
/// eventsource_runtime::telemetry::set_attribute("order.priority", "express");
/// eventsource_runtime::telemetry::set_attribute("order.lines", 3_i64);
/// ```
#[cfg(feature = "tracing")]
pub fn set_attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
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

/// The `tracing-opentelemetry` layer with this crate's settings, for a custom subscriber.
///
/// Location, thread, target and inactivity tracking are off: they cost about a third of a
/// span's price and the contract does not use them.
#[cfg(feature = "tracing")]
pub fn layer<S, T>(tracer: T) -> tracing_opentelemetry::OpenTelemetryLayer<S, T>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
}
