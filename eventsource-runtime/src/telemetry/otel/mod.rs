//! What the runtime records, through `tracing` and OpenTelemetry: spans ([`SpanStart`],
//! [`Span`]), metrics ([`metrics`]) and log lines ([`log`]). The components describe what to
//! record with the plain data of [`values`](super::values); this module records it.
//!
//! Without the `tracing` feature, `otel_off.rs` stands in for this module with the same
//! names, recording nothing: the components are written once for both builds, and the
//! compiler removes their telemetry when it is off.

pub(crate) mod direct;
pub(crate) mod log;
pub(crate) mod metrics;
mod span;
mod start;
mod value;

pub use span::Span;
pub(crate) use span::{Stopwatch, in_stored_context};
pub(crate) use start::{SpanStart, kind_name};

/// Whether the process switch lets telemetry through (for work that only feeds it).
#[inline]
pub(crate) fn enabled() -> bool {
    super::toggles::is_enabled()
}
