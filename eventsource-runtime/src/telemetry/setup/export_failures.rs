//! Export you can see fail: the OTLP exporters are wrapped to count what they sent and
//! what they dropped. The first failure of each kind is one WARN line naming its cause
//! (`cause`): a cause of the collector as a whole (refused, a TLS handshake it refused, a
//! certificate not trusted, ...) is one line for spans and metrics together; an error status
//! or an unnamed error, one per endpoint. After that, at most one summary line a minute; at
//! shutdown, one line if anything was lost or the flush ran out of time, referring to the
//! cause by name. A guard dropped before any span ended (`let _ = telemetry::init();`) says
//! so too.

// Without the `otlp` feature nothing is exported, so only the span count and the
// shutdown lines are used.
#![cfg_attr(not(feature = "otlp"), allow(dead_code))]

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::console::SharedWriter;
use cause::{Cause, Circumstances, Sign};

mod cause;

/// How often, at most, a summary of continued failures is printed.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What the process's telemetry export did: shared by the wrapped exporters, the span
/// counter and the guard.
pub(super) struct ExportHealth {
    out: Mutex<SharedWriter>,
    /// Whether spans go to an OTLP exporter (else none is "sent", and none is lost).
    exporting_spans: bool,
    /// Spans handed to the exporters (ended and sampled).
    spans_ended: AtomicU64,
    spans_sent: AtomicU64,
    spans_dropped: AtomicU64,
    metric_exports_sent: AtomicU64,
    metric_exports_failed: AtomicU64,
    /// The kinds of failure warned about, with the cause each line named (or a surer
    /// reading of it that came later).
    seen: Mutex<HashMap<String, Cause>>,
    summary: Mutex<Summary>,
}

/// What was dropped since the last line printed about it.
struct Summary {
    last_line: Instant,
    spans: u64,
    metric_exports: u64,
    /// The last failure's cause, by name (empty before any).
    last_cause: String,
}

/// Which signal an exporter carries.
#[derive(Debug, Clone, Copy)]
pub(super) enum Signal {
    Spans,
    Metrics,
}

impl ExportHealth {
    pub(super) fn new(out: SharedWriter, exporting_spans: bool) -> Arc<Self> {
        Arc::new(Self {
            out: Mutex::new(out),
            exporting_spans,
            spans_ended: AtomicU64::new(0),
            spans_sent: AtomicU64::new(0),
            spans_dropped: AtomicU64::new(0),
            metric_exports_sent: AtomicU64::new(0),
            metric_exports_failed: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            summary: Mutex::new(Summary {
                last_line: Instant::now(),
                spans: 0,
                metric_exports: 0,
                last_cause: String::new(),
            }),
        })
    }

    pub(super) fn line(&self, message: &str) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        super::warn(&mut out, message);
        let _ = out.flush();
    }

    /// Spans that ended since `init`.
    pub(super) fn spans_ended(&self) -> u64 {
        self.spans_ended.load(Ordering::Relaxed)
    }

    fn sent(&self, signal: Signal, spans: u64) {
        match signal {
            Signal::Spans => self.spans_sent.fetch_add(spans, Ordering::Relaxed),
            Signal::Metrics => self.metric_exports_sent.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Whether an export of `signal` got through before.
    fn delivered(&self, signal: Signal) -> bool {
        match signal {
            Signal::Spans => self.spans_sent.load(Ordering::Relaxed) > 0,
            Signal::Metrics => self.metric_exports_sent.load(Ordering::Relaxed) > 0,
        }
    }

    /// An export failed with `error` (the exporter's whole error text): `spans` spans lost
    /// (0 for a metric export).
    fn failed(&self, signal: Signal, target: &Target, spans: u64, error: &str) {
        let cause = Cause::of(
            error,
            Circumstances {
                https: target.is_https(),
                client_certificate: target.client_certificate,
                delivered_before: self.delivered(signal),
            },
        );
        match signal {
            Signal::Spans => self.spans_dropped.fetch_add(spans, Ordering::Relaxed),
            Signal::Metrics => self.metric_exports_failed.fetch_add(1, Ordering::Relaxed),
        };
        let what = match signal {
            Signal::Spans => format!("{spans} span(s)"),
            Signal::Metrics => "a metric export".to_owned(),
        };
        // A cause of the collector's is one line for both signals; another, one per endpoint.
        let kind = if cause.of_the_collector() {
            format!("{} {} {}", target.origin(), target.protocol, cause.kind())
        } else {
            format!(
                "{signal:?} {} {} {}",
                target.endpoint,
                target.protocol,
                cause.kind()
            )
        };
        let (first, named) = match self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
        {
            Entry::Vacant(entry) => (true, entry.insert(cause.clone()).label()),
            Entry::Occupied(mut entry) => {
                // The collector's alert confirms what the first line called most likely.
                if let Cause::ClientCertificateWanted {
                    sign: Sign::CertificateRequired,
                } = cause
                {
                    entry.insert(cause.clone());
                }
                (false, entry.get().label())
            }
        };
        let mut summary = self.summary.lock().unwrap_or_else(PoisonError::into_inner);
        summary.last_cause = named;
        if first {
            summary.last_line = Instant::now();
            drop(summary);
            let others = if cause.of_the_collector() {
                "further failures with this cause, of spans or metrics, are summarised once a \
                 minute"
            } else {
                "further failures like this one are summarised once a minute"
            };
            // The transport's own words, once: the whole chain, on one line.
            self.line(&format!(
                "OTLP export of {} to {} ({}) failed, {what} dropped: {} [{}] ({others})",
                signal.name(),
                target.endpoint,
                target.protocol,
                cause.explanation(),
                short(error)
            ));
            return;
        }
        match signal {
            Signal::Spans => summary.spans += spans,
            Signal::Metrics => summary.metric_exports += 1,
        }
        if summary.last_line.elapsed() >= SUMMARY_EVERY {
            let line = format!(
                "OTLP export still failing: {} span(s) and {} metric export(s) dropped in the \
                 last {} s (last cause: {})",
                summary.spans,
                summary.metric_exports,
                summary.last_line.elapsed().as_secs(),
                summary.last_cause
            );
            summary.spans = 0;
            summary.metric_exports = 0;
            summary.last_line = Instant::now();
            drop(summary);
            self.line(&line);
        }
    }

    /// The line printed at shutdown, if anything was lost or the flush ran out of time.
    pub(super) fn at_shutdown(&self, timed_out: Option<Duration>) {
        let ended = self.spans_ended.load(Ordering::Relaxed);
        let sent = self.spans_sent.load(Ordering::Relaxed);
        let dropped = self.spans_dropped.load(Ordering::Relaxed);
        let metrics = self.metric_exports_failed.load(Ordering::Relaxed);
        let unsent = if self.exporting_spans {
            ended.saturating_sub(sent)
        } else {
            0
        };
        let last_cause = self
            .summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_cause
            .clone();
        // The cause by name: the warning above showed the transport's words.
        let cause = if last_cause.is_empty() {
            String::new()
        } else {
            format!(" (last cause: {last_cause}; see the warning above)")
        };
        if !self.exporting_spans && metrics == 0 && timed_out.is_none() {
            return;
        }
        if let Some(limit) = timed_out {
            self.line(&format!(
                "telemetry shutdown gave up after {} ms: {unsent} of {ended} span(s) not \
                 confirmed sent, {metrics} metric export(s) failed{cause}",
                limit.as_millis()
            ));
        } else if dropped > 0 || metrics > 0 || unsent > 0 {
            self.line(&format!(
                "telemetry shut down: {unsent} of {ended} span(s) not sent, {metrics} metric \
                 export(s) failed{cause}"
            ));
        }
    }
}

impl Signal {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Metrics => "metrics",
        }
    }
}

/// The error text on one line, at most 300 characters.
fn short(error: &str) -> String {
    let one_line: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 300 {
        let cut: String = one_line.chars().take(300).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// Where an exporter sends (for the warning lines).
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) endpoint: String,
    pub(super) protocol: &'static str,
    /// Whether a client certificate (mutual TLS) is configured for the signal.
    pub(super) client_certificate: bool,
}

impl Target {
    /// Whether the endpoint asks for TLS.
    pub(super) fn is_https(&self) -> bool {
        self.endpoint
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// The collector: the endpoint's scheme, host and port, without the path (the HTTP
    /// signals' endpoints differ only there).
    fn origin(&self) -> &str {
        let after_scheme = self.endpoint.find("://").map_or(0, |at| at + 3);
        match self.endpoint[after_scheme..].find('/') {
            Some(slash) => &self.endpoint[..after_scheme + slash],
            None => &self.endpoint,
        }
    }
}

/// Counts the spans that end (and are sampled), ahead of the exporters' processors.
#[derive(Debug)]
pub(super) struct SpanCounter(pub(super) Arc<ExportHealth>);

impl std::fmt::Debug for ExportHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportHealth")
            .field("spans_ended", &self.spans_ended.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SpanProcessor for SpanCounter {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, _: SpanData) {
        self.0.spans_ended.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The cause of the last failed HTTP request, kept by eventsource's HTTP client: the OTLP
/// exporter reports any transport failure as "network error", whatever it was (refused, timed
/// out, a certificate not trusted).
#[derive(Debug, Default)]
pub(super) struct TransportCause(Mutex<Option<String>>);

impl TransportCause {
    pub(super) fn set(&self, cause: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(cause);
    }

    /// `error`, with the transport's cause when there is one.
    fn explain(&self, error: &dyn std::fmt::Display) -> String {
        match self.0.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(cause) => format!("{error} ({cause})"),
            None => error.to_string(),
        }
    }
}

/// An OTLP exporter whose results are counted and reported.
#[derive(Debug)]
#[cfg(feature = "otlp")]
pub(super) struct Watched<E> {
    pub(super) inner: E,
    pub(super) health: Arc<ExportHealth>,
    pub(super) target: Target,
    pub(super) cause: Arc<TransportCause>,
}

#[cfg(feature = "otlp")]
impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Watched<E>
{
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.health.sent(Signal::Spans, spans),
            Err(error) => {
                let error = self.cause.explain(error);
                self.health
                    .failed(Signal::Spans, &self.target, spans, &error);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(feature = "otlp")]
impl<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>
    opentelemetry_sdk::metrics::exporter::PushMetricExporter for Watched<E>
{
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        match &result {
            Ok(()) => self.health.sent(Signal::Metrics, 0),
            Err(error) => {
                let error = self.cause.explain(error);
                self.health.failed(Signal::Metrics, &self.target, 0, &error);
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.inner.temporality()
    }
}
