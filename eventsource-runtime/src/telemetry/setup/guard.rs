//! [`TelemetryGuard`]: what [`init`](super::init) installed, flushed on demand and shut down,
//! within the shutdown timeout, when the guard is dropped.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::ConsoleExporter;
use super::dropped_guard::DropWatch;
use super::export_failures::ExportHealth;

/// Keeps telemetry running; dropping it flushes what is buffered (console traces, OTLP
/// batches, metrics) and shuts the providers down.
///
/// ```
/// let guard = eventsource_runtime::telemetry::Telemetry::builder()
///     .writer(std::io::sink())
///     .init();
/// tracing::info_span!("work").in_scope(|| {});
/// guard.force_flush();
/// drop(guard); // shut down
/// ```
#[must_use = "telemetry is shut down when the guard is dropped"]
pub struct TelemetryGuard {
    pub(super) inner: Option<Installed>,
}

pub(super) struct Installed {
    pub(super) tracer_provider: SdkTracerProvider,
    pub(super) meter_provider: Option<SdkMeterProvider>,
    pub(super) console: Option<ConsoleExporter>,
    pub(super) health: Arc<ExportHealth>,
    /// Says so when spans start after the guard was dropped right after `init`.
    pub(super) drop_watch: Arc<DropWatch>,
    pub(super) shutdown_timeout: Duration,
    pub(super) installed_at: Instant,
    #[cfg(feature = "otlp")]
    pub(super) _runtime: Option<super::export::ExportRuntime>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("TelemetryGuard");
        s.field("active", &self.inner.is_some());
        if let Some(inner) = &self.inner {
            s.field("console", &inner.console.is_some())
                .field("metrics", &inner.meter_provider.is_some());
        }
        s.finish()
    }
}

impl TelemetryGuard {
    /// Whether telemetry was set up (`false` for the guard [`init`](super::init) returns after a
    /// failure).
    ///
    /// ```
    /// let guard = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .writer(std::io::sink())
    ///     .init();
    /// println!("telemetry on: {}", guard.is_active());
    /// ```
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Exports what is buffered now: OTLP batches, metrics, and the console traces whose
    /// root has not ended yet (printed as incomplete).
    ///
    /// ```
    /// let guard = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .writer(std::io::sink())
    ///     .init();
    /// guard.force_flush();
    /// ```
    pub fn force_flush(&self) {
        let Some(inner) = &self.inner else { return };
        let _ = inner.tracer_provider.force_flush();
        if let Some(console) = &inner.console {
            let _ = opentelemetry_sdk::trace::SpanExporter::force_flush(console);
        }
        if let Some(meters) = &inner.meter_provider {
            let _ = meters.force_flush();
        }
    }
}

impl TelemetryGuard {
    /// Exports what is left and shuts telemetry down now, on purpose: what dropping the
    /// guard does, without ever taking it for a guard dropped by mistake right after `init`
    /// (whose warning comes only if spans start after it anyway).
    ///
    /// ```
    /// let guard = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .writer(std::io::sink())
    ///     .init();
    /// // ... the program found nothing to do ...
    /// guard.shutdown();
    /// ```
    pub fn shutdown(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown(false);
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown(true);
        }
    }
}

/// A guard dropped this soon after `init`, before any span ended, may never have been kept
/// (`let _ = telemetry::init();`), or the program ended at once (an error at its start):
/// which one, the spans that start after it tell ([`DropWatch`]).
const DROPPED_AT_ONCE: Duration = Duration::from_secs(1);

impl Installed {
    /// Shuts every exporter down; `dropped`: by the guard's drop, which may have come right
    /// after `init` by mistake.
    fn shutdown(self, dropped: bool) {
        let health = Arc::clone(&self.health);
        if dropped && health.spans_ended() == 0 && self.installed_at.elapsed() < DROPPED_AT_ONCE {
            self.drop_watch.dropped_early();
        }
        // The batch processor and the periodic reader export from their own threads and
        // the gRPC transport runs on its own runtime, so this is safe on any thread, async
        // or not. It runs on a thread of its own, waited for at most `shutdown_timeout`: a
        // collector that never answers must not hold the program's exit. The export runtime
        // goes last (`shutdown_background`, never a blocking drop).
        let timeout = self.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        let (done, finished) = std::sync::mpsc::channel();
        let mut waiting = 0;
        // Each shutdown reports whether it ran out of time itself.
        let mut spawn = |name: &str, shutdown: Box<dyn FnOnce() -> bool + Send>| {
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("eventsource-{name}-shutdown"))
                .spawn(move || {
                    let _ = done.send(shutdown());
                });
            // No thread to spare: nothing waited for there.
            waiting += usize::from(spawned.is_ok());
        };
        // Spans and metrics shut down side by side, each within the same limit.
        let tracer_provider = self.tracer_provider;
        let ran_out = |result: OTelSdkResult| matches!(result, Err(OTelSdkError::Timeout(_)));
        spawn(
            "traces",
            Box::new(move || ran_out(tracer_provider.shutdown_with_timeout(timeout))),
        );
        if let Some(meters) = self.meter_provider {
            spawn(
                "metrics",
                Box::new(move || ran_out(meters.shutdown_with_timeout(timeout))),
            );
        }
        let mut timed_out = None;
        for _ in 0..waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            match finished.recv_timeout(left) {
                Ok(false) => {}
                Ok(true) | Err(_) => {
                    timed_out = Some(timeout);
                    break;
                }
            }
        }
        health.at_shutdown(timed_out);
    }
}
