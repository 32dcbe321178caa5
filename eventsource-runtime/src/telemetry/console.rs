//! The console renderer: each finished trace as an indented tree, for development.
//!
//! [`ConsoleExporter`] is an OpenTelemetry [`SpanExporter`]. It buffers spans per trace and
//! prints a trace when its root span ends (children end before their root), so a command's
//! load, save, store and projection spans come out as one story. Nothing is lost: spans
//! still buffered (a root that has not ended yet, a child that outlived its root) are
//! printed on `force_flush` and `shutdown`, marked as incomplete or continued.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Array, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Spans buffered at most before the oldest trace is printed as incomplete.
const MAX_BUFFERED_SPANS: usize = 10_000;
/// Printed spans whose names are remembered for later links.
const MAX_REMEMBERED_NAMES: usize = 4_096;
/// How long a trace linked to a trace still in progress waits to be printed after it.
const MAX_DEFER: Duration = Duration::from_secs(5);
/// Attributes shown per span; the rest are counted.
const MAX_ATTRIBUTES: usize = 8;
/// Characters shown of one attribute value.
const MAX_VALUE_CHARS: usize = 48;
/// Items shown of an array value.
const MAX_ARRAY_ITEMS: usize = 6;

/// A `std::io::Write` shared by the console renderer and the log lines.
#[derive(Clone)]
pub(crate) struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedWriter {
    pub(crate) fn new(writer: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(writer))))
    }

    pub(crate) fn stderr() -> Self {
        Self::new(std::io::stderr())
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // One lock for the whole buffer: a trace or a log line is never interleaved.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedWriter {
    type Writer = SharedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A [`SpanExporter`] that prints each finished trace as an indented tree, with durations,
/// span kinds, the key attributes, links and errors. `telemetry::init()` installs it when no
/// OTLP endpoint is configured.
///
/// Use it with a `SimpleSpanProcessor` (spans reach it as they end). Clones share the
/// buffer, so keep one to call [`SpanExporter::force_flush`] on: the simple processor does
/// not forward its own `force_flush`.
///
/// A trace looks like this:
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
/// command.ShipOrder  internal  1.42ms  aggregate.id=order-2 aggregate.type=Order
/// │  ✗ error: order order-2 is cancelled
/// ├─ eventsource.repository.load  internal  310µs  events.replayed=2 version=2
/// │  └─ eventsource.event_store.load  client  120µs  from_version=1 db.system.name=in_memory
/// └─ …
/// ```
///
/// Attributes: `eventsource.*` (shown without the prefix), `db.*`, `messaging.*` and the
/// application's own; `code.*`, `thread.*`, `exception.*` (shown as the error line) and
/// `cqrs.side` are left out, as is an attribute equal to the parent span's, or an
/// `eventsource.*` one already spelled in the span name (`command.type` on
/// `command.PlaceOrder`). A link reads
/// `↳ linked to <trace_id>/<span_id> (<name>)`, the name when the linked span was seen. A
/// trace linked to a trace still in progress (a projection run inside its command) is
/// printed right after that trace.
///
/// ```
/// use eventsource_runtime::telemetry::ConsoleExporter;
/// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
/// use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
///
/// let console = ConsoleExporter::with_writer(std::io::sink()); // or ConsoleExporter::new()
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(SimpleSpanProcessor::new(console.clone()))
///     .build();
/// provider.tracer("example").in_span("work", |_cx| {});
/// provider.shutdown().unwrap(); // prints what is still buffered
/// ```
#[derive(Clone)]
pub struct ConsoleExporter {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter").finish_non_exhaustive()
    }
}

impl Default for ConsoleExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleExporter {
    /// A renderer writing to stderr.
    ///
    /// ```
    /// let console = eventsource_runtime::telemetry::ConsoleExporter::new();
    /// # drop(console);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_shared(SharedWriter::stderr())
    }

    /// A renderer writing to `writer` (a file, a buffer in a test).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Clone, Default)]
    /// struct Buffer(Arc<Mutex<Vec<u8>>>);
    /// impl Write for Buffer {
    ///     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().write(buf)
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let buffer = Buffer::default();
    /// let console = eventsource_runtime::telemetry::ConsoleExporter::with_writer(buffer.clone());
    /// # drop(console);
    /// ```
    #[must_use]
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        Self::with_shared(SharedWriter::new(writer))
    }

    pub(crate) fn with_shared(out: SharedWriter) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                out,
                traces: HashMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
                buffered: 0,
                names: HashMap::new(),
                names_fifo: VecDeque::new(),
                deferred: Vec::new(),
                shut_down: false,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpanExporter for ConsoleExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut state = self.lock();
        let result = if state.shut_down {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            let mut text = String::new();
            for span in batch {
                state.add(span, &mut text);
            }
            state.release_expired(&mut text);
            state.evict_overflow(&mut text);
            state.write(&text)
        };
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let mut state = self.lock();
        if state.shut_down {
            return Ok(());
        }
        state.shut_down = true;
        state.flush_all()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.lock().flush_all()
    }
}

/// The spans of one trace waiting for their root.
struct Pending {
    seq: u64,
    spans: Vec<SpanData>,
}

/// A rendered trace waiting for the trace it links to.
struct Deferred {
    trace: TraceId,
    after: TraceId,
    since: Instant,
    text: String,
}

struct State {
    out: SharedWriter,
    traces: HashMap<TraceId, Pending>,
    /// Trace ids by arrival, for flushing and eviction in order.
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    buffered: usize,
    /// Names of printed spans, for links that point at them.
    names: HashMap<SpanId, (TraceId, String)>,
    names_fifo: VecDeque<SpanId>,
    deferred: Vec<Deferred>,
    shut_down: bool,
}

impl State {
    fn add(&mut self, span: SpanData, out: &mut String) {
        let trace = span.span_context.trace_id();
        let id = span.span_context.span_id();
        let parent = span.parent_span_id;
        // A span starts a print when nothing in this process will end above it: a root, a
        // span continuing a remote parent (unless that parent ended here and waits in the
        // buffer: an in-process bus's consume span under its publish span), or a late child
        // of an already printed span.
        let print_now = parent == SpanId::INVALID
            || (span.parent_span_is_remote && !self.is_buffered(trace, parent))
            || self.names.get(&parent).is_some_and(|(t, _)| *t == trace);
        let pending = self.traces.entry(trace).or_insert_with(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, trace);
            Pending {
                seq,
                spans: Vec::new(),
            }
        });
        pending.spans.push(span);
        self.buffered += 1;
        if print_now {
            self.print_subtree(trace, id, out);
        }
    }

    /// Whether span `id` of `trace` ended and waits in the buffer.
    fn is_buffered(&self, trace: TraceId, id: SpanId) -> bool {
        self.traces
            .get(&trace)
            .is_some_and(|p| p.spans.iter().any(|s| s.span_context.span_id() == id))
    }

    /// Takes the spans of `trace` below `root` (inclusive) out of the buffer.
    fn take_subtree(&mut self, trace: TraceId, root: SpanId) -> Vec<SpanData> {
        let Some(pending) = self.traces.get_mut(&trace) else {
            return Vec::new();
        };
        let mut children: HashMap<SpanId, Vec<SpanId>> = HashMap::new();
        for span in &pending.spans {
            let id = span.span_context.span_id();
            if span.parent_span_id != id {
                children.entry(span.parent_span_id).or_default().push(id);
            }
        }
        let mut keep = HashSet::from([root]);
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            for &child in children.get(&id).into_iter().flatten() {
                if keep.insert(child) {
                    todo.push(child);
                }
            }
        }
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut pending.spans)
            .into_iter()
            .partition(|s| keep.contains(&s.span_context.span_id()));
        self.buffered -= taken.len();
        if rest.is_empty() {
            let seq = pending.seq;
            self.traces.remove(&trace);
            self.order.remove(&seq);
        } else {
            pending.spans = rest;
        }
        taken
    }

    fn print_subtree(&mut self, trace: TraceId, root: SpanId, out: &mut String) {
        let spans = self.take_subtree(trace, root);
        if spans.is_empty() {
            return;
        }
        let text = self.render(trace, &spans);
        self.remember(trace, &spans);
        // A trace linked to a trace still in progress comes out right after it.
        let after = spans
            .iter()
            .flat_map(|s| &s.links.links)
            .map(|l| l.span_context.trace_id())
            .find(|t| *t != trace && self.traces.contains_key(t));
        if let Some(after) = after {
            self.deferred.push(Deferred {
                trace,
                after,
                since: Instant::now(),
                text,
            });
            return;
        }
        out.push_str(&text);
        self.release_after(trace, out);
    }

    /// Prints the traces deferred until `trace` was printed, once nothing of it is left.
    fn release_after(&mut self, trace: TraceId, out: &mut String) {
        let mut done = vec![trace];
        while let Some(trace) = done.pop() {
            if self.traces.contains_key(&trace) {
                continue;
            }
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|d| d.after == trace);
            self.deferred = waiting;
            for deferred in ready {
                out.push_str(&deferred.text);
                done.push(deferred.trace);
            }
        }
    }

    fn release_expired(&mut self, out: &mut String) {
        if self.deferred.iter().any(|d| d.since.elapsed() >= MAX_DEFER) {
            let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|d| d.since.elapsed() >= MAX_DEFER);
            self.deferred = waiting;
            for deferred in expired {
                out.push_str(&deferred.text);
            }
        }
    }

    /// Bounds the memory of traces whose root never ends.
    fn evict_overflow(&mut self, out: &mut String) {
        while self.buffered > MAX_BUFFERED_SPANS {
            let Some((_, trace)) = self.order.pop_first() else {
                break;
            };
            self.print_all_of(trace, out);
        }
    }

    /// Prints whatever is buffered of `trace`, as one tree per span whose parent is absent.
    fn print_all_of(&mut self, trace: TraceId, out: &mut String) {
        let Some(pending) = self.traces.remove(&trace) else {
            return;
        };
        self.order.remove(&pending.seq);
        self.buffered -= pending.spans.len();
        let text = self.render(trace, &pending.spans);
        self.remember(trace, &pending.spans);
        out.push_str(&text);
        self.release_after(trace, out);
    }

    fn flush_all(&mut self) -> OTelSdkResult {
        let mut text = String::new();
        while let Some((_, trace)) = self.order.pop_first() {
            self.print_all_of(trace, &mut text);
        }
        for deferred in std::mem::take(&mut self.deferred) {
            text.push_str(&deferred.text);
        }
        self.write(&text)
    }

    fn write(&mut self, text: &str) -> OTelSdkResult {
        if text.is_empty() {
            return Ok(());
        }
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| OTelSdkError::InternalFailure(format!("console exporter: {e}")))
    }

    fn remember(&mut self, trace: TraceId, spans: &[SpanData]) {
        for span in spans {
            let id = span.span_context.span_id();
            if self
                .names
                .insert(id, (trace, span.name.to_string()))
                .is_none()
            {
                self.names_fifo.push_back(id);
            }
        }
        while self.names_fifo.len() > MAX_REMEMBERED_NAMES {
            if let Some(old) = self.names_fifo.pop_front() {
                self.names.remove(&old);
            }
        }
    }

    /// The name of a linked span, if this process has seen it (printed or still buffered).
    fn link_name<'a>(&'a self, current: &'a [SpanData], cx: &SpanContext) -> Option<&'a str> {
        let (trace, id) = (cx.trace_id(), cx.span_id());
        let same =
            |s: &&SpanData| s.span_context.trace_id() == trace && s.span_context.span_id() == id;
        current
            .iter()
            .find(same)
            .or_else(|| self.traces.get(&trace)?.spans.iter().find(same))
            .map(|s| s.name.as_ref())
            .or_else(|| {
                self.names
                    .get(&id)
                    .filter(|(t, _)| *t == trace)
                    .map(|(_, n)| n.as_str())
            })
    }

    /// Renders `spans` (of one trace) as trees: one per span whose parent is not among them.
    fn render(&self, trace: TraceId, spans: &[SpanData]) -> String {
        let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
        let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
        let mut roots = Vec::new();
        for span in spans {
            let id = span.span_context.span_id();
            if span.parent_span_id != id && ids.contains(&span.parent_span_id) {
                children.entry(span.parent_span_id).or_default().push(span);
            } else {
                roots.push(span);
            }
        }
        for list in children.values_mut() {
            list.sort_by_key(|s| s.start_time);
        }
        roots.sort_by_key(|s| s.start_time);

        let mut out = String::new();
        let mut visited = HashSet::new();
        let render_root = |out: &mut String, root: &SpanData, visited: &mut HashSet<SpanId>| {
            let parent = root.parent_span_id;
            let _ = write!(out, "trace {trace}");
            if parent != SpanId::INVALID {
                let _ = if root.parent_span_is_remote {
                    write!(out, " (continues remote parent {parent})")
                } else if self.names.get(&parent).is_some_and(|(t, _)| *t == trace) {
                    write!(out, " (continued, below {parent})")
                } else {
                    write!(out, " (incomplete: parent {parent} had not ended)")
                };
            }
            out.push('\n');
            let node = Node {
                state: self,
                spans,
                children: &children,
            };
            node.write(out, root, None, "", "", true, visited);
            out.push('\n');
        };
        for root in roots {
            render_root(&mut out, root, &mut visited);
        }
        // Spans in a parent cycle (never produced by the SDK) are not lost either.
        while let Some(rest) = spans
            .iter()
            .filter(|s| !visited.contains(&s.span_context.span_id()))
            .min_by_key(|s| s.start_time)
        {
            render_root(&mut out, rest, &mut visited);
        }
        out
    }
}

/// What rendering a node needs.
struct Node<'a> {
    state: &'a State,
    spans: &'a [SpanData],
    children: &'a HashMap<SpanId, Vec<&'a SpanData>>,
}

impl Node<'_> {
    /// Writes `span` and its subtree. `prefix` is the indentation of `span`'s line,
    /// `connector` its branch (`├─ `, `└─ `, or empty for a root).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        out: &mut String,
        span: &SpanData,
        parent: Option<&SpanData>,
        prefix: &str,
        connector: &str,
        last: bool,
        visited: &mut HashSet<SpanId>,
    ) {
        let id = span.span_context.span_id();
        if !visited.insert(id) {
            return;
        }
        let _ = write!(
            out,
            "{prefix}{connector}{}  {}  {}",
            span.name,
            kind(&span.span_kind),
            duration(span),
        );
        let attributes = attributes(span, parent);
        if !attributes.is_empty() {
            let _ = write!(out, "  {}", attributes.join(" "));
        }
        out.push('\n');

        let child_prefix = if parent.is_none() {
            String::new()
        } else if last {
            format!("{prefix}   ")
        } else {
            format!("{prefix}│  ")
        };
        let kids = self.children.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let detail = format!(
            "{child_prefix}{}",
            if kids.is_empty() { "   " } else { "│  " }
        );
        for link in &span.links.links {
            let cx = &link.span_context;
            let _ = write!(
                out,
                "{detail}↳ linked to {}/{}",
                cx.trace_id(),
                cx.span_id()
            );
            if let Some(name) = self.state.link_name(self.spans, cx) {
                let _ = write!(out, " ({name})");
            }
            out.push('\n');
        }
        if let Status::Error { description } = &span.status {
            let _ = writeln!(out, "{detail}✗ error{}", error_text(span, description));
        }
        for (i, kid) in kids.iter().enumerate() {
            let last_kid = i + 1 == kids.len();
            let branch = if last_kid { "└─ " } else { "├─ " };
            self.write(
                out,
                kid,
                Some(span),
                &child_prefix,
                branch,
                last_kid,
                visited,
            );
        }
    }
}

/// `: description [exception.type]`, from the status and the `exception` span event.
fn error_text(span: &SpanData, description: &str) -> String {
    let exception = span
        .events
        .events
        .iter()
        .find(|e| e.name == "exception")
        .map(|e| &e.attributes);
    let find = |key: &str| {
        exception
            .into_iter()
            .flatten()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    let message = if description.is_empty() {
        find("exception.message").unwrap_or_default()
    } else {
        description.to_owned()
    };
    let mut text = String::new();
    if !message.is_empty() {
        let _ = write!(text, ": {message}");
    }
    if let Some(ty) = find("exception.type") {
        let _ = write!(text, " [{ty}]");
    }
    text
}

fn kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn duration(span: &SpanData) -> String {
    let d = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    if d < Duration::from_micros(1) {
        format!("{}ns", d.as_nanos())
    } else if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Keys never shown: tracing-opentelemetry's bookkeeping, and what other lines show.
fn hidden(key: &str) -> bool {
    const PREFIXES: [&str; 4] = ["code.", "thread.", "exception.", "otel."];
    const KEYS: [&str; 5] = ["target", "busy_ns", "idle_ns", "cqrs.side", "error.chain"];
    PREFIXES.iter().any(|p| key.starts_with(p)) || KEYS.contains(&key)
}

/// `key=value` of the attributes worth a glance.
fn attributes(span: &SpanData, parent: Option<&SpanData>) -> Vec<String> {
    let mut shown = Vec::new();
    let mut more = 0;
    for kv in &span.attributes {
        let key = kv.key.as_str();
        if hidden(key) {
            continue;
        }
        // The parent already says it (the aggregate id on every repository/store span).
        if parent.is_some_and(|p| p.attributes.iter().any(|pkv| pkv == kv)) {
            continue;
        }
        // The name already says it (`command.type` on `command.PlaceOrder`).
        if let Value::String(s) = &kv.value
            && key.starts_with("eventsource.")
            && span.name.split('.').any(|segment| segment == s.as_str())
        {
            continue;
        }
        if shown.len() == MAX_ATTRIBUTES {
            more += 1;
            continue;
        }
        let key = key.strip_prefix("eventsource.").unwrap_or(key);
        shown.push(format!("{key}={}", value(&kv.value)));
    }
    if more > 0 {
        shown.push(format!("(+{more} more)"));
    }
    shown
}

fn value(value: &Value) -> String {
    match value {
        Value::String(s) => text(s.as_str()),
        Value::Array(Array::String(items)) => list(items.iter().map(|s| text(s.as_str()))),
        Value::Array(Array::I64(items)) => list(items.iter().map(i64::to_string)),
        Value::Array(Array::F64(items)) => list(items.iter().map(f64::to_string)),
        Value::Array(Array::Bool(items)) => list(items.iter().map(bool::to_string)),
        other => text(&other.to_string()),
    }
}

fn list(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut shown: Vec<String> = items.take(MAX_ARRAY_ITEMS).collect();
    if total > MAX_ARRAY_ITEMS {
        shown.push(format!("…+{}", total - MAX_ARRAY_ITEMS));
    }
    format!("[{}]", shown.join(", "))
}

/// A string value, cut to [`MAX_VALUE_CHARS`] and quoted when it would not read as one token.
fn text(s: &str) -> String {
    let cut: String = if s.chars().count() > MAX_VALUE_CHARS {
        s.chars()
            .take(MAX_VALUE_CHARS - 1)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        s.to_owned()
    };
    if cut.is_empty() || cut.contains(|c: char| c.is_whitespace() || matches!(c, '=' | '"' | ',')) {
        format!("{cut:?}")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::trace::{
        Span as _, TraceContextExt as _, TraceFlags, TraceState, Tracer as _, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SimpleSpanProcessor};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    struct Pipeline {
        provider: SdkTracerProvider,
        console: ConsoleExporter,
        out: Buffer,
    }

    fn pipeline() -> Pipeline {
        let out = Buffer::default();
        let console = ConsoleExporter::with_writer(out.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(console.clone()))
            .build();
        Pipeline {
            provider,
            console,
            out,
        }
    }

    impl Pipeline {
        fn tracer(&self) -> SdkTracer {
            self.provider.tracer("console-test")
        }

        /// Runs `f` with `tracing` spans recorded through the crate's layer.
        fn with_tracing(&self, f: impl FnOnce()) {
            let layer = crate::telemetry::layer(self.tracer());
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        }
    }

    /// Replaces each span line's duration (the field after the kind) with `<d>`.
    fn normalize(text: &str) -> String {
        text.lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split("  ").collect();
                let kinds = ["internal", "client", "server", "producer", "consumer"];
                if let Some(i) = fields.iter().position(|f| kinds.contains(f))
                    && i + 1 < fields.len()
                {
                    fields[i + 1] = "<d>";
                }
                fields.join("  ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_command_prints_as_one_tree_when_its_root_ends() {
        let p = pipeline();
        p.with_tracing(|| {
            let command = tracing::info_span!(
                "command",
                otel.name = "command.PlaceOrder",
                eventsource.command.type = "PlaceOrder",
                eventsource.aggregate.type = "Order",
                eventsource.aggregate.id = "order-1",
                cqrs.side = "write",
                eventsource.event.count = 1_i64,
            );
            command.set_attribute(
                "eventsource.event.types",
                Value::Array(vec![opentelemetry::StringValue::from("OrderPlaced")].into()),
            );
            command.in_scope(|| {
                tracing::info_span!(
                    "eventsource.repository.load",
                    eventsource.aggregate.id = "order-1",
                    eventsource.events.replayed = 0_i64,
                    eventsource.version = 0_i64,
                )
                .in_scope(|| {
                    tracing::info_span!(
                        "eventsource.event_store.load",
                        otel.kind = "client",
                        eventsource.aggregate.id = "order-1",
                        db.system.name = "in_memory",
                        db.operation.name = "load",
                        eventsource.events.loaded = 0_i64,
                    )
                    .in_scope(|| {});
                });
                tracing::info_span!(
                    "eventsource.repository.save",
                    eventsource.aggregate.id = "order-1",
                    eventsource.version = 1_i64,
                )
                .in_scope(|| {
                    tracing::info_span!(
                        "eventsource.event_store.append",
                        otel.kind = "client",
                        eventsource.aggregate.id = "order-1",
                        db.system.name = "in_memory",
                        customer.note = "leave at the door",
                    )
                    .in_scope(|| {});
                });
                assert_eq!(p.out.text(), "", "nothing before the root ends");
            });
        });
        let text = p.out.text();
        let trace_line = text.lines().next().unwrap();
        assert!(
            trace_line.starts_with("trace ") && trace_line.len() == 6 + 32,
            "{text}"
        );
        let expected = "\
command.PlaceOrder  internal  <d>  aggregate.type=Order aggregate.id=order-1 event.count=1 event.types=[OrderPlaced]
├─ eventsource.repository.load  internal  <d>  events.replayed=0 version=0
│  └─ eventsource.event_store.load  client  <d>  db.system.name=in_memory db.operation.name=load events.loaded=0
└─ eventsource.repository.save  internal  <d>  version=1
   └─ eventsource.event_store.append  client  <d>  db.system.name=in_memory customer.note=\"leave at the door\"
";
        let body: String = normalize(&text)
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(body.trim_end(), expected.trim_end(), "\n{text}");
        assert!(text.ends_with("\n\n"), "a blank line after each trace");
    }

    #[test]
    fn durations_are_readable() {
        let p = pipeline();
        let tracer = p.tracer();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (name, d) in [
            ("micro", Duration::from_micros(250)),
            ("milli", Duration::from_micros(1_500)),
            ("seconds", Duration::from_millis(2_500)),
        ] {
            let mut span = tracer.span_builder(name).with_start_time(t0).start(&tracer);
            span.end_with_timestamp(t0 + d);
        }
        let text = p.out.text();
        assert!(text.contains("\nmicro  internal  250µs\n"), "{text}");
        assert!(text.contains("\nmilli  internal  1.50ms\n"), "{text}");
        assert!(text.contains("\nseconds  internal  2.500s\n"), "{text}");
    }

    #[test]
    fn errors_show_the_status_description_and_exception_type() {
        let p = pipeline();
        let tracer = p.tracer();
        tracer.in_span("command.ShipOrder", |cx| {
            let span = cx.span();
            span.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", "OrderError"),
                    KeyValue::new("exception.message", "order order-2 is cancelled"),
                ],
            );
            span.set_status(Status::error("order order-2 is cancelled"));
            tracer.in_span("eventsource.repository.load", |_| {});
        });
        let text = p.out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("command.ShipOrder  internal  "),
            "{text}"
        );
        assert_eq!(
            lines[2], "│  ✗ error: order order-2 is cancelled [OrderError]",
            "{text}"
        );
        assert!(
            lines[3].starts_with("└─ eventsource.repository.load"),
            "{text}"
        );
        assert!(
            !text.contains("exception."),
            "shown as the error line only: {text}"
        );
    }

    #[test]
    fn a_projection_linked_to_its_command_prints_after_it_with_the_linked_name() {
        let p = pipeline();
        let tracer = p.tracer();
        let command = tracer.start("command.PlaceOrder");
        let command_cx = Context::new().with_span(command);
        let append = tracer.start_with_context("eventsource.event_store.append", &command_cx);
        let append_sc = append.span_context().clone();
        drop(append);
        // The projection runs inside the command (in-process delivery): a new root, linked.
        let mut projection = tracer
            .span_builder("projection.OrderReadModel")
            .with_kind(SpanKind::Consumer)
            .with_links(vec![opentelemetry::trace::Link::with_context(
                append_sc.clone(),
            )])
            .start(&tracer);
        projection.set_attribute(KeyValue::new(
            "eventsource.projection.name",
            "OrderReadModel",
        ));
        projection.set_attribute(KeyValue::new("eventsource.event.sequence", 1_i64));
        projection.end();
        assert_eq!(p.out.text(), "", "waits for the command it is linked to");
        command_cx.span().end();

        let text = p.out.text();
        let command_at = text.find("command.PlaceOrder").unwrap();
        let projection_at = text.find("projection.OrderReadModel").unwrap();
        assert!(command_at < projection_at, "{text}");
        let link = format!(
            "   ↳ linked to {}/{} (eventsource.event_store.append)",
            append_sc.trace_id(),
            append_sc.span_id()
        );
        assert!(text.lines().any(|l| l == link), "{text}");
        assert!(
            text.contains("projection.OrderReadModel  consumer  "),
            "kind shown: {text}"
        );
        assert!(text.contains("event.sequence=1"), "{text}");
        assert!(
            !text.contains("projection.name="),
            "the name already says it: {text}"
        );

        // Linked to a span of a trace printed earlier: printed at once, with the name.
        let before = p.out.text().len();
        let command_sc = command_cx.span().span_context().clone();
        tracer
            .span_builder("replay")
            .with_links(vec![opentelemetry::trace::Link::with_context(
                command_sc.clone(),
            )])
            .start(&tracer)
            .end();
        let later = p.out.text()[before..].to_owned();
        assert!(
            later.contains(&format!(
                "↳ linked to {}/{} (command.PlaceOrder)",
                command_sc.trace_id(),
                command_sc.span_id()
            )),
            "{later}"
        );
    }

    #[test]
    fn a_link_to_an_unknown_span_shows_its_ids_only() {
        let p = pipeline();
        let remote = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        p.with_tracing(|| {
            let span = tracing::info_span!("projection", otel.name = "projection.Stats");
            span.add_link(remote);
            span.in_scope(|| {});
        });
        let text = p.out.text();
        assert!(
            text.lines()
                .any(|l| l == "   ↳ linked to 0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331"),
            "{text}"
        );
    }

    #[test]
    fn a_span_continuing_a_remote_parent_prints_when_it_ends() {
        let p = pipeline();
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let tracer = p.tracer();
        let parent = Context::new().with_remote_span_context(remote);
        tracer
            .span_builder("eventsource.event_bus.consume")
            .with_kind(SpanKind::Consumer)
            .start_with_context(&tracer, &parent)
            .end();
        let text = p.out.text();
        assert!(
            text.starts_with(
                "trace 4bf92f3577b34da6a3ce929d0e0e4736 (continues remote parent 00f067aa0ba902b7)\n\
                 eventsource.event_bus.consume  consumer  "
            ),
            "{text}"
        );
    }

    #[test]
    fn a_remote_child_of_a_buffered_span_prints_in_its_tree() {
        // An in-process bus: the consume span continues the publish span's context read
        // from the message headers (a remote parent), after the publish span ended, while
        // the command still runs.
        let p = pipeline();
        let tracer = p.tracer();
        let command = tracer.start("command.PlaceOrder");
        let command_cx = Context::new().with_span(command);
        let publish = tracer
            .span_builder("eventsource.event_bus.publish")
            .with_kind(SpanKind::Producer)
            .start_with_context(&tracer, &command_cx);
        let headers = Context::new().with_remote_span_context(publish.span_context().clone());
        drop(publish);
        tracer
            .span_builder("eventsource.event_bus.consume")
            .with_kind(SpanKind::Consumer)
            .start_with_context(&tracer, &headers)
            .end();
        assert_eq!(p.out.text(), "", "nothing before the command ends");
        command_cx.span().end();
        let text = normalize(&p.out.text());
        assert!(
            text.trim_end().ends_with(
                "command.PlaceOrder  internal  <d>\n\
                 └─ eventsource.event_bus.publish  producer  <d>\n   \
                 └─ eventsource.event_bus.consume  consumer  <d>"
            ),
            "{text}"
        );
    }

    #[test]
    fn leftovers_are_printed_on_force_flush_and_late_children_continue() {
        let p = pipeline();
        let tracer = p.tracer();
        let root = tracer.start("serve");
        let root_cx = Context::new().with_span(root);
        tracer.start_with_context("early", &root_cx).end();
        let late = tracer.start_with_context("late", &root_cx);
        assert_eq!(p.out.text(), "");

        p.console.force_flush().unwrap();
        let text = p.out.text();
        let root_id = root_cx.span().span_context().span_id();
        assert!(
            text.contains(&format!(
                "(incomplete: parent {root_id} had not ended)\nearly  internal  "
            )),
            "{text}"
        );

        root_cx.span().end();
        assert!(p.out.text().contains("\nserve  internal  "));
        drop(late); // ends after its root was printed
        let text = p.out.text();
        assert!(
            text.contains(&format!("(continued, below {root_id})\nlate  internal  ")),
            "{text}"
        );
    }

    #[test]
    fn shutdown_prints_what_is_buffered() {
        let p = pipeline();
        let tracer = p.tracer();
        let root = tracer.start("never-ends");
        let cx = Context::new().with_span(root);
        tracer.start_with_context("child", &cx).end();
        p.provider.shutdown().unwrap();
        let text = p.out.text();
        assert!(text.contains("\nchild  internal  "), "{text}");
        // The root span itself is never exported: it did not end.
        assert!(!text.contains("never-ends  internal"), "{text}");
    }

    #[test]
    fn attribute_values_are_short() {
        let p = pipeline();
        p.with_tracing(|| {
            let span = tracing::info_span!(
                "work",
                note = "",
                big = 7_u64, // arrives as a string
                flag = true,
                ratio = 0.5,
                long = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
            );
            span.set_attribute(
                "items",
                Value::Array(Array::I64(vec![1, 2, 3, 4, 5, 6, 7, 8])),
            );
            span.in_scope(|| {});
        });
        let text = p.out.text();
        let line = text.lines().nth(1).unwrap();
        assert!(line.contains(r#"note="""#), "{line}");
        assert!(line.contains("big=7 flag=true ratio=0.5"), "{line}");
        assert!(
            line.contains("long=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu…"),
            "{line}"
        );
        assert!(line.contains("items=[1, 2, 3, 4, 5, 6, …+2]"), "{line}");
        assert!(
            !line.contains("code.") && !line.contains("thread."),
            "{line}"
        );
    }

    #[test]
    fn export_after_shutdown_is_an_error() {
        let console = ConsoleExporter::with_writer(std::io::sink());
        console.shutdown().unwrap();
        let result = futures_ready(console.export(Vec::new()));
        assert!(matches!(result, Err(OTelSdkError::AlreadyShutdown)));
    }

    /// Polls a future that is ready at once (the console's export is synchronous).
    fn futures_ready<F: std::future::Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the console export never waits"),
        }
    }
}
