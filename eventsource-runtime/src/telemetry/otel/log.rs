//! The runtime's log lines: `tracing` events with the target `eventsource`, written with
//! `tracing`'s field syntax. Within a span of the runtime they are also recorded as span
//! events (by the layer). Without the `tracing` feature the same macros write nothing.

/// An INFO line.
macro_rules! log_info {
    ($($arg:tt)+) => { ::tracing::info!(target: $crate::telemetry::TARGET, $($arg)+) };
}

/// A DEBUG line (only the Kafka and NATS groups write one: a message skipped).
#[cfg(any(feature = "kafka", feature = "nats"))]
macro_rules! log_debug {
    ($($arg:tt)+) => { ::tracing::debug!(target: $crate::telemetry::TARGET, $($arg)+) };
}

/// A WARN line.
macro_rules! log_warn {
    ($($arg:tt)+) => { ::tracing::warn!(target: $crate::telemetry::TARGET, $($arg)+) };
}

/// An ERROR line.
macro_rules! log_error {
    ($($arg:tt)+) => { ::tracing::error!(target: $crate::telemetry::TARGET, $($arg)+) };
}

#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) use log_debug;
pub(crate) use {log_error, log_info, log_warn};
