//! Capture spans and metrics in process and assert on them.

use std::fmt::Write as _;

use opentelemetry::trace::{SpanId, SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Metric, MetricData, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

/// Spans captured on this thread while the capture lives.
///
/// The capture installs a thread-local `tracing` subscriber (registry + the same
/// OpenTelemetry layer settings as `telemetry::init()`) exporting to memory. Use it from a
/// current-thread runtime (`#[tokio::test]`'s default) so every span is recorded on the
/// test's thread.
///
/// ```
/// use eventsource_runtime::testing::capture;
///
/// let capture = capture();
/// tracing::info_span!("outer").in_scope(|| tracing::info_span!("inner").in_scope(|| {}));
/// let spans = capture.spans();
/// spans.assert_child_of("inner", "outer");
/// assert!(spans.is_root(spans.get("outer")));
/// ```
#[must_use = "spans are captured only while the capture lives"]
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _guard: DefaultGuard,
}

impl std::fmt::Debug for SpanCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanCapture").finish_non_exhaustive()
    }
}

/// Starts capturing the spans of this thread.
pub fn capture() -> SpanCapture {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(exporter.clone()))
        .build();
    let layer = crate::telemetry::layer(provider.tracer("eventsource-test"));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    SpanCapture {
        exporter,
        provider,
        _guard: guard,
    }
}

impl SpanCapture {
    /// The spans finished so far, in the order they ended.
    #[must_use]
    pub fn spans(&self) -> CapturedSpans {
        let _ = self.provider.force_flush();
        CapturedSpans(self.exporter.get_finished_spans().unwrap_or_default())
    }

    /// Forgets the spans captured so far.
    pub fn clear(&self) {
        self.exporter.reset();
    }
}

/// Finished spans, with lookups and assertions for tests. Lookups panic with the list of
/// captured span names when nothing matches, which is what a failing test wants to see.
#[derive(Debug, Clone)]
pub struct CapturedSpans(pub Vec<SpanData>);

impl CapturedSpans {
    /// The names of all spans, in the order they ended.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|s| s.name.as_ref()).collect()
    }

    /// How many spans were captured.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no span was captured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every span named `name`.
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&SpanData> {
        self.0.iter().filter(|s| s.name == name).collect()
    }

    /// The first span (in the order they ended) named `name`, if any.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&SpanData> {
        self.0.iter().find(|s| s.name == name)
    }

    /// Every span for which `predicate` holds.
    ///
    /// ```
    /// use eventsource_runtime::testing::{SpanKind, capture};
    ///
    /// let capture = capture();
    /// tracing::info_span!("work").in_scope(|| {});
    /// let spans = capture.spans();
    /// assert_eq!(spans.find_all(|s| s.span_kind == SpanKind::Internal).len(), 1);
    /// ```
    #[must_use]
    pub fn find_all(&self, predicate: impl Fn(&SpanData) -> bool) -> Vec<&SpanData> {
        self.0.iter().filter(|s| predicate(s)).collect()
    }

    /// Every span carrying the attribute `key` = `value`.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("load", order.id = "o-1").in_scope(|| {});
    /// tracing::info_span!("load", order.id = "o-2").in_scope(|| {});
    /// let spans = capture.spans();
    /// assert_eq!(spans.with_attribute("order.id", "o-2").len(), 1);
    /// ```
    #[must_use]
    pub fn with_attribute(&self, key: &str, value: impl Into<Value>) -> Vec<&SpanData> {
        let value = value.into();
        self.find_all(|s| attribute(s, key) == Some(&value))
    }

    /// Asserts that no span is named `name`.
    ///
    /// # Panics
    /// When one is, with the captured tree.
    #[track_caller]
    pub fn assert_no_span(&self, name: &str) {
        let found = self.all(name).len();
        assert!(
            found == 0,
            "expected no span named `{name}`, found {found}; captured:\n{}",
            self.tree()
        );
    }

    /// Asserts that the one span named `name` ended with status ERROR whose description
    /// contains `message`, and carries exactly one `exception` event.
    ///
    /// # Panics
    /// When it did not, with the span's status and events.
    #[track_caller]
    pub fn assert_error(&self, name: &str, message: &str) {
        let span = self.get(name);
        let described =
            matches!(&span.status, Status::Error { description } if description.contains(message));
        let exceptions = events(span, "exception").len();
        assert!(
            described && exceptions == 1,
            "span `{name}`: expected status ERROR containing {message:?} and one `exception` \
             event; status is {:?}, {exceptions} exception event(s)",
            span.status
        );
    }

    /// Asserts that the one span named `descendant` is below the one named `ancestor`,
    /// at any depth.
    ///
    /// # Panics
    /// When it is not, with the captured tree.
    #[track_caller]
    pub fn assert_descendant_of(&self, descendant: &str, ancestor: &str) {
        let target = self.get(ancestor).span_context.span_id();
        let mut current = self.parent(self.get(descendant));
        while let Some(span) = current {
            if span.span_context.span_id() == target {
                return;
            }
            current = self.parent(span);
        }
        panic!(
            "`{descendant}` is not below `{ancestor}`; captured:\n{}",
            self.tree()
        );
    }

    /// The one span named `name`.
    ///
    /// # Panics
    /// When there is none or several.
    #[track_caller]
    #[must_use]
    pub fn get(&self, name: &str) -> &SpanData {
        match self.all(name).as_slice() {
            [one] => one,
            [] => panic!("no span named `{name}`; captured:\n{}", self.tree()),
            many => panic!(
                "{} spans named `{name}`; captured:\n{}",
                many.len(),
                self.tree()
            ),
        }
    }

    /// The parent of `span`, if it was captured.
    #[must_use]
    pub fn parent(&self, span: &SpanData) -> Option<&SpanData> {
        self.0
            .iter()
            .find(|p| p.span_context.span_id() == span.parent_span_id)
    }

    /// The direct children of `span`.
    #[must_use]
    pub fn children(&self, span: &SpanData) -> Vec<&SpanData> {
        self.0
            .iter()
            .filter(|c| c.parent_span_id == span.span_context.span_id())
            .collect()
    }

    /// Whether `span` has no parent.
    #[must_use]
    pub fn is_root(&self, span: &SpanData) -> bool {
        span.parent_span_id == SpanId::INVALID
    }

    /// Asserts that the span named `child` is a direct child of the span named `parent`.
    ///
    /// # Panics
    /// When it is not.
    #[track_caller]
    pub fn assert_child_of(&self, child: &str, parent: &str) {
        let (c, p) = (self.get(child), self.get(parent));
        assert!(
            c.parent_span_id == p.span_context.span_id()
                && c.span_context.trace_id() == p.span_context.trace_id(),
            "`{child}` is not a child of `{parent}`; captured:\n{}",
            self.tree()
        );
    }

    /// Asserts that the span named `name` is a root with a link to the span named `target`.
    ///
    /// # Panics
    /// When it is not.
    #[track_caller]
    pub fn assert_linked_root(&self, name: &str, target: &str) {
        let (s, t) = (self.get(name), self.get(target));
        assert!(
            self.is_root(s),
            "`{name}` is not a root; captured:\n{}",
            self.tree()
        );
        assert!(
            s.links
                .links
                .iter()
                .any(|l| l.span_context.span_id() == t.span_context.span_id()
                    && l.span_context.trace_id() == t.span_context.trace_id()),
            "`{name}` has no link to `{target}`: {:?}",
            s.links.links
        );
    }

    /// The spans as an indented tree (roots in the order they ended), for failure messages.
    #[must_use]
    pub fn tree(&self) -> String {
        let mut out = String::new();
        for root in self.0.iter().filter(|s| self.parent(s).is_none()) {
            self.write_tree(&mut out, root, 0);
        }
        out
    }

    fn write_tree(&self, out: &mut String, span: &SpanData, depth: usize) {
        let _ = writeln!(
            out,
            "{:indent$}{} [{:?}{}]{}",
            "",
            span.name,
            span.span_kind,
            match &span.status {
                Status::Error { description } => format!(", ERROR {description}"),
                _ => String::new(),
            },
            if span.links.links.is_empty() {
                ""
            } else {
                " (linked)"
            },
            indent = depth * 2
        );
        let mut children = self.children(span);
        children.sort_by_key(|c| c.start_time);
        for child in children {
            self.write_tree(out, child, depth + 1);
        }
    }
}

/// The value of attribute `key` on `span`.
#[must_use]
pub fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Asserts that `span` carries `key` = `expected` (typed: `Value::I64(2)` is not
/// `"2"`); the failure names the span and lists its attributes.
///
/// ```
/// use eventsource_runtime::testing::{assert_attribute, capture};
///
/// let capture = capture();
/// tracing::info_span!("load", order.id = "o-1", lines = 2_i64).in_scope(|| {});
/// let spans = capture.spans();
/// let load = spans.get("load");
/// assert_attribute(load, "order.id", "o-1");
/// assert_attribute(load, "lines", 2_i64);
/// ```
///
/// # Panics
/// When the attribute is missing or has another value.
#[track_caller]
pub fn assert_attribute(span: &SpanData, key: &str, expected: impl Into<Value>) {
    let expected = expected.into();
    let actual = attribute(span, key);
    if actual != Some(&expected) {
        let listed: Vec<String> = span
            .attributes
            .iter()
            .map(|kv| format!("{} = {}", kv.key, typed(&kv.value)))
            .collect();
        panic!(
            "span `{}`: expected `{key}` = {}, found {}\n  its attributes:\n    {}",
            span.name,
            typed(&expected),
            actual.map_or_else(|| "no such attribute".to_owned(), typed),
            listed.join("\n    ")
        );
    }
}

/// A value with its type, as a failure shows it: `"o-1"`, `2 (i64)`, `true`, `[a, b]`.
fn typed(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.as_str()),
        Value::I64(n) => format!("{n} (i64)"),
        Value::F64(x) => format!("{x} (f64)"),
        Value::Bool(b) => b.to_string(),
        other => format!("{other} (array)"),
    }
}

/// The span's kind.
#[must_use]
pub fn kind(span: &SpanData) -> SpanKind {
    span.span_kind.clone()
}

/// The span's events named `name`, each as its attributes.
#[must_use]
pub fn events<'a>(span: &'a SpanData, name: &str) -> Vec<&'a [KeyValue]> {
    span.events
        .events
        .iter()
        .filter(|e| e.name == name)
        .map(|e| e.attributes.as_slice())
        .collect()
}

/// Metrics captured process-wide, from the global meter provider this installs.
pub struct MetricCapture {
    exporter: InMemoryMetricExporter,
    provider: SdkMeterProvider,
}

impl std::fmt::Debug for MetricCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricCapture").finish_non_exhaustive()
    }
}

/// Installs an in-memory global meter provider and re-binds the runtime's instruments to
/// it. Global: use one per test binary, and tell tests apart by their attributes.
#[must_use]
pub fn capture_metrics() -> MetricCapture {
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

    /// The latest export (each metric in it holds its cumulative data).
    fn latest_export(&self) -> Option<ResourceMetrics> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_metrics().ok()?.pop()
    }
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
