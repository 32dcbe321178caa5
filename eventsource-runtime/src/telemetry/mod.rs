//! Telemetry, the ground floor: what every component records with, as the telemetry
//! contract (`docs/telemetry.md`) specifies. It imports no component.
//!
//! - [`attributes`]: every key, span name and metric name, as constants;
//! - [`toggles`]: the process-wide switch (`EVENTSOURCE_TRACING=off`) and the projection
//!   override; components have their own `enable_tracing`;
//! - [`propagation`]: W3C trace context in event metadata and message headers;
//! - [`set_attribute`] and [`current_context`]: the current span, however it was made;
//! - [`init`] and [`layer`]: application setup (the `OTEL_*` settings, exporters, the
//!   console renderer, eventsource's `tracing` layer).
//!
//! How the components record (crate-private): each builds its own spans in its own
//! `instrument` module, through one way to start a span that goes to the OpenTelemetry SDK
//! directly under eventsource's layer and makes an ordinary `tracing` span under any other
//! subscriber. Each component declares its metric instruments (name, unit, description,
//! buckets) as `static`s in that same module, with the kinds `otel::metrics` provides, and
//! records them there; the instruments are made on first use and read without a lock. So a
//! new counter is one `static` beside the code that counts, and nothing here changes.
//! Without the `tracing` feature only [`attributes`] and [`toggles`] remain, and the
//! components' telemetry compiles to nothing.

pub mod attributes;
pub mod secrets;
pub mod toggles;
pub(crate) mod values;

// The one switch between the two builds: the real recorder, or its no-op twin.
#[cfg_attr(not(feature = "tracing"), path = "otel_off.rs")]
pub(crate) mod otel;

#[cfg(feature = "tracing")]
pub(crate) mod current;
#[cfg(feature = "tracing")]
pub mod propagation;
#[cfg(feature = "tracing")]
mod setup;

#[cfg(feature = "tracing")]
pub use current::{current_context, set_attribute};
#[cfg(feature = "tracing")]
pub use setup::{
    ConsoleDetail, ConsoleExporter, InitError, OtelLayer, Telemetry, TelemetryBuilder,
    TelemetryGuard, init, instrumentation_scope, layer,
};
pub use toggles::{is_enabled, set_enabled};

/// The `tracing` target of every span and log line of the runtime.
pub const TARGET: &str = "eventsource";
