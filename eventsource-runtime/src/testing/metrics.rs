//! Metric capture: one at a time, since metrics are process-global.

use std::panic::Location;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Metric, MetricData, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// Metrics recorded while the capture lives, from the global meter provider it installs.
///
/// Metrics go through OpenTelemetry's one global meter provider, so two captures alive at
/// once would read each other's (or zeros): one capture lives at a time. A second
/// [`capture_metrics`] waits for the live one to be dropped (tests that capture metrics
/// run one after the other), and panics, saying where the live one was made, if that
/// takes longer than [`METRIC_CAPTURE_WAIT`] or the live one is on its own thread (it
/// would never be dropped). A capture kept for a whole binary (a `static LazyLock`) is
/// then the binary's only one.
///
/// What the capture reads is every measurement made meanwhile in the process, the
/// binary's other tests included: tell tests apart by their attributes (an aggregate id,
/// a handler name of their own).
pub struct MetricCapture {
    exporter: InMemoryMetricExporter,
    provider: SdkMeterProvider,
}

/// How long [`capture_metrics`] waits for another live metric capture to be dropped.
pub const METRIC_CAPTURE_WAIT: Duration = Duration::from_secs(120);

/// The live metric capture: where it was made, and on which thread.
static LIVE: Mutex<Option<(&'static Location<'static>, ThreadId)>> = Mutex::new(None);
static RELEASED: Condvar = Condvar::new();

impl Drop for MetricCapture {
    fn drop(&mut self) {
        *LIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        RELEASED.notify_all();
    }
}

impl std::fmt::Debug for MetricCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricCapture").finish_non_exhaustive()
    }
}

/// Installs an in-memory global meter provider and re-binds the runtime's instruments to
/// it, for the life of the returned capture (one at a time: see [`MetricCapture`]).
///
/// ```
/// use eventsource_runtime::testing::capture_metrics;
///
/// let first = capture_metrics();
/// drop(first); // the next capture waits for this one
/// let second = capture_metrics();
/// assert!(second.names().is_empty());
/// ```
///
/// # Panics
/// When another metric capture is alive on this thread, or stays alive longer than
/// [`METRIC_CAPTURE_WAIT`]: the message says where it was made.
#[track_caller]
#[must_use]
pub fn capture_metrics() -> MetricCapture {
    let here = Location::caller();
    let thread = std::thread::current().id();
    let deadline = Instant::now() + METRIC_CAPTURE_WAIT;
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some((made_at, owner)) = *live {
        let now = Instant::now();
        assert!(
            owner != thread && now < deadline,
            "capture_metrics() at {here}: the metric capture made at {made_at} is still alive \
             ({}). Metrics are process-global, so two captures would read each other's \
             numbers: drop the first one, or share one capture (a `static LazyLock`) and tell \
             tests apart by their attributes",
            if owner == thread {
                "on this thread, it would never be dropped while this one waits"
            } else {
                "waited too long for it to be dropped"
            }
        );
        live = RELEASED
            .wait_timeout(live, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    *live = Some((here, thread));
    drop(live);
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    crate::telemetry::otel::metrics::rebind();
    MetricCapture { exporter, provider }
}

impl MetricCapture {
    /// The sum of counter `name` over the data points having every attribute in `having`
    /// (cumulative since the capture started). Histograms count their recordings.
    #[must_use]
    pub fn total(&self, name: &str, having: &[(&str, &str)]) -> u64 {
        let _ = self.provider.force_flush();
        let Ok(batches) = self.exporter.get_finished_metrics() else {
            return 0;
        };
        let Some(latest) = batches.last() else {
            return 0;
        };
        let matches = |attrs: &mut dyn Iterator<Item = &KeyValue>| {
            let attrs: Vec<&KeyValue> = attrs.collect();
            has_all(&attrs, having)
        };
        let mut total = 0;
        for metric in latest
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
        {
            // A counter's value, or how many values a histogram recorded.
            let counts: Vec<u64> = match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                    .data_points()
                    .filter(|dp| matches(&mut dp.attributes()))
                    .map(|dp| dp.value())
                    .collect(),
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .filter(|dp| matches(&mut dp.attributes()))
                    .map(|dp| dp.count())
                    .collect(),
                _ => Vec::new(),
            };
            total += counts.iter().sum::<u64>();
        }
        total
    }

    /// The last value gauge `name` (`f64` or `u64`) recorded on the data point having every
    /// attribute in `having`; `None` if none did (or several data points match).
    #[must_use]
    pub fn gauge(&self, name: &str, having: &[(&str, &str)]) -> Option<f64> {
        let latest = self.latest_export();
        let matches = |attrs: &mut dyn Iterator<Item = &KeyValue>| {
            let attrs: Vec<&KeyValue> = attrs.collect();
            has_all(&attrs, having)
        };
        #[allow(clippy::cast_precision_loss)] // test values, far below 2^53
        let values: Vec<f64> = metrics_of(latest.as_ref())
            .filter(|m| m.name() == name)
            .flat_map(|m| match m.data() {
                AggregatedMetrics::F64(MetricData::Gauge(g)) => g
                    .data_points()
                    .filter(|p| matches(&mut p.attributes()))
                    .map(|p| p.value())
                    .collect::<Vec<_>>(),
                AggregatedMetrics::U64(MetricData::Gauge(g)) => g
                    .data_points()
                    .filter(|p| matches(&mut p.attributes()))
                    .map(|p| p.value() as f64)
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        match values.as_slice() {
            [value] => Some(*value),
            _ => None,
        }
    }

    /// The unit of metric `name`, if it was recorded.
    #[must_use]
    pub fn unit(&self, name: &str) -> Option<String> {
        let _ = self.provider.force_flush();
        let batches = self.exporter.get_finished_metrics().ok()?;
        batches
            .last()?
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)
            .map(|m| m.unit().to_owned())
    }

    /// The names of every metric recorded so far, sorted, without duplicates.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let latest = self.latest_export();
        let mut names: Vec<String> = metrics_of(latest.as_ref())
            .map(|m| m.name().to_owned())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The attribute sets of metric `name`'s data points (one per distinct set of
    /// attributes recorded), whatever the instrument: to check which attributes a metric
    /// carries, and that none is unbounded (an aggregate id, say).
    ///
    /// ```
    /// use eventsource_runtime::testing::capture_metrics;
    ///
    /// let metrics = capture_metrics();
    /// opentelemetry::global::meter("doc")
    ///     .u64_counter("doc.calls")
    ///     .build()
    ///     .add(1, &[opentelemetry::KeyValue::new("call.kind", "read")]);
    /// assert_eq!(metrics.attribute_keys("doc.calls"), ["call.kind"]);
    /// assert_eq!(metrics.data_point_attributes("doc.calls")[0][0].value.as_str(), "read");
    /// ```
    #[must_use]
    pub fn data_point_attributes(&self, name: &str) -> Vec<Vec<KeyValue>> {
        fn points<T>(data: &MetricData<T>) -> Vec<Vec<KeyValue>> {
            fn collect<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> Vec<KeyValue> {
                attrs.cloned().collect()
            }
            match data {
                MetricData::Gauge(g) => g.data_points().map(|p| collect(p.attributes())).collect(),
                MetricData::Sum(s) => s.data_points().map(|p| collect(p.attributes())).collect(),
                MetricData::Histogram(h) => {
                    h.data_points().map(|p| collect(p.attributes())).collect()
                }
                MetricData::ExponentialHistogram(h) => {
                    h.data_points().map(|p| collect(p.attributes())).collect()
                }
            }
        }
        let latest = self.latest_export();
        metrics_of(latest.as_ref())
            .filter(|m| m.name() == name)
            .flat_map(|m| match m.data() {
                AggregatedMetrics::F64(data) => points(data),
                AggregatedMetrics::U64(data) => points(data),
                AggregatedMetrics::I64(data) => points(data),
            })
            .collect()
    }

    /// Every attribute key found on metric `name`'s data points, sorted, without
    /// duplicates.
    #[must_use]
    pub fn attribute_keys(&self, name: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .data_point_attributes(name)
            .iter()
            .flatten()
            .map(|kv| kv.key.to_string())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The sum of the values recorded by histogram `name` (`f64` or `u64`) over the data points having
    /// every attribute in `having` (cumulative since the capture started); 0 if none.
    #[must_use]
    pub fn histogram_sum(&self, name: &str, having: &[(&str, &str)]) -> f64 {
        let latest = self.latest_export();
        metrics_of(latest.as_ref())
            .filter(|m| m.name() == name)
            .map(|m| match m.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .filter(|dp| has_all(&dp.attributes().collect::<Vec<_>>(), having))
                    .map(|dp| dp.sum())
                    .sum::<f64>(),
                AggregatedMetrics::U64(MetricData::Histogram(h)) => h
                    .data_points()
                    .filter(|dp| has_all(&dp.attributes().collect::<Vec<_>>(), having))
                    .map(|dp| dp.sum() as f64)
                    .sum::<f64>(),
                _ => 0.0,
            })
            .sum()
    }

    /// The buckets of histogram `name` (`f64` or `u64`) over the data points having every
    /// attribute in `having`, added up (cumulative since the capture started): what a
    /// backend computes quantiles from. `None` when nothing was recorded.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture_metrics;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let metrics = capture_metrics();
    /// eventsource_runtime::query::run("CountOrders", async { Ok::<_, std::io::Error>(3) })
    ///     .await
    ///     .unwrap();
    /// let buckets = metrics
    ///     .histogram_buckets("cqrs.query.duration", &[("query.type", "CountOrders")])
    ///     .unwrap();
    /// assert_eq!(buckets.counts.iter().sum::<u64>(), 1);
    /// assert_eq!(buckets.counts.len(), buckets.bounds.len() + 1); // and one above the last
    /// # }
    /// ```
    #[must_use]
    pub fn histogram_buckets(
        &self,
        name: &str,
        having: &[(&str, &str)],
    ) -> Option<HistogramBuckets> {
        let latest = self.latest_export();
        let mut found: Option<HistogramBuckets> = None;
        let mut add = |bounds: Vec<f64>, counts: Vec<u64>| match &mut found {
            Some(sum) if sum.bounds == bounds => {
                for (total, count) in sum.counts.iter_mut().zip(counts) {
                    *total += count;
                }
            }
            Some(_) => {}
            None => found = Some(HistogramBuckets { bounds, counts }),
        };
        for metric in metrics_of(latest.as_ref()).filter(|m| m.name() == name) {
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for dp in h.data_points() {
                        if has_all(&dp.attributes().collect::<Vec<_>>(), having) {
                            add(dp.bounds().collect(), dp.bucket_counts().collect());
                        }
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for dp in h.data_points() {
                        if has_all(&dp.attributes().collect::<Vec<_>>(), having) {
                            add(dp.bounds().collect(), dp.bucket_counts().collect());
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// The latest export (each metric in it holds its cumulative data).
    fn latest_export(&self) -> Option<ResourceMetrics> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_metrics().ok()?.pop()
    }
}

/// A histogram's buckets, as exported: `counts[i]` measurements were at most `bounds[i]`
/// (and above `bounds[i - 1]`); the last count is of those above every bound.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistogramBuckets {
    /// The upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// The measurements per bucket: one more than there are bounds.
    pub counts: Vec<u64>,
}

/// Whether `attributes` has every `(key, value)` of `having`.
fn has_all(attributes: &[&KeyValue], having: &[(&str, &str)]) -> bool {
    having.iter().all(|(k, v)| {
        attributes
            .iter()
            .any(|kv| kv.key.as_str() == *k && kv.value.as_str() == *v)
    })
}

/// The metrics of an export, if any.
fn metrics_of(export: Option<&ResourceMetrics>) -> impl Iterator<Item = &Metric> {
    export
        .into_iter()
        .flat_map(ResourceMetrics::scope_metrics)
        .flat_map(ScopeMetrics::metrics)
}
