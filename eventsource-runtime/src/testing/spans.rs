//! Captured spans: lookups and assertions whose failures say what was captured.

use std::fmt::Write as _;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::telemetry::attributes as attr;

/// A span of the test's traces that had not ended when the spans were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSpan {
    /// Its name.
    pub name: String,
    /// Whether it started on another thread than the capture's.
    pub other_thread: bool,
}

/// Finished spans, with lookups and assertions for tests. A failing lookup or assertion
/// panics with the captured tree (and the spans of the test still running), which is what
/// a failing test wants to see.
///
/// Read them from [`SpanCapture::spans`](super::SpanCapture::spans), or wrap spans from
/// elsewhere with `CapturedSpans::from(vec_of_span_data)`.
#[derive(Debug, Clone)]
pub struct CapturedSpans(pub Vec<SpanData>, Vec<OpenSpan>);

impl From<Vec<SpanData>> for CapturedSpans {
    fn from(spans: Vec<SpanData>) -> Self {
        Self(spans, Vec::new())
    }
}

/// A value an attribute is expected to have: a string (`"cart-1"`, a `String`), an
/// integer, a `bool`, an `f64`, a list of strings, or an OpenTelemetry [`Value`].
///
/// ```
/// use eventsource_runtime::testing::{ExpectedValue, Value};
///
/// assert_eq!("cart-1".into_value(), Value::from("cart-1"));
/// assert_eq!(3.into_value(), Value::I64(3));
/// ```
pub trait ExpectedValue {
    /// The value as OpenTelemetry's.
    fn into_value(self) -> Value;
}

impl ExpectedValue for Value {
    fn into_value(self) -> Value {
        self
    }
}
impl ExpectedValue for &str {
    fn into_value(self) -> Value {
        Value::String(self.to_owned().into())
    }
}
impl ExpectedValue for String {
    fn into_value(self) -> Value {
        Value::String(self.into())
    }
}
impl ExpectedValue for &String {
    fn into_value(self) -> Value {
        Value::String(self.clone().into())
    }
}
impl ExpectedValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}
impl ExpectedValue for f64 {
    fn into_value(self) -> Value {
        Value::F64(self)
    }
}
impl ExpectedValue for &[&str] {
    fn into_value(self) -> Value {
        Value::Array(Array::String(
            self.iter().map(|s| (*s).to_owned().into()).collect(),
        ))
    }
}
impl<const N: usize> ExpectedValue for [&str; N] {
    fn into_value(self) -> Value {
        self.as_slice().into_value()
    }
}
macro_rules! expected_int {
    ($($t:ty),*) => {$(
        impl ExpectedValue for $t {
            fn into_value(self) -> Value {
                // Recorded integers are i64; a larger one is recorded as its decimal string.
                i64::try_from(self).map_or_else(|_| Value::from(self.to_string()), Value::I64)
            }
        }
    )*};
}
expected_int!(i32, i64, u32, u64, usize);

impl CapturedSpans {
    pub(super) fn with_open(spans: Vec<SpanData>, open: Vec<OpenSpan>) -> Self {
        Self(spans, open)
    }

    /// The spans of the test's traces that had not ended when these were read (a spawned
    /// task still running): failure messages list them.
    #[must_use]
    pub fn open(&self) -> &[OpenSpan] {
        &self.1
    }

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

    /// Every span named `name`, in the order they ended.
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&SpanData> {
        self.0.iter().filter(|s| s.name == name).collect()
    }

    /// The first span named `name` to end, if any (no panic when the name repeats).
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// for _ in 0..2 { tracing::info_span!("retry").in_scope(|| {}); }
    /// let spans = capture.spans();
    /// assert!(spans.first("retry").is_some());
    /// assert!(spans.first("nothing").is_none());
    /// ```
    #[must_use]
    pub fn first(&self, name: &str) -> Option<&SpanData> {
        self.0.iter().find(|s| s.name == name)
    }

    /// The one span named `name`.
    ///
    /// # Panics
    /// When there is none, or several (saying how many: use [`all`](Self::all),
    /// [`first`](Self::first) or [`get_with`](Self::get_with) then).
    #[track_caller]
    #[must_use]
    pub fn get(&self, name: &str) -> &SpanData {
        match self.all(name).as_slice() {
            [one] => one,
            [] => panic!("no span named `{name}`; {}", self.report()),
            many => panic!(
                "{} spans named `{name}`, `get` wants exactly one: use `all`, `first` or \
                 `get_with(name, key, value)`; {}",
                many.len(),
                self.report()
            ),
        }
    }

    /// Every span for which `predicate` holds, in the order they ended.
    ///
    /// ```
    /// use eventsource_runtime::testing::{SpanKind, capture};
    ///
    /// let capture = capture();
    /// tracing::info_span!("a").in_scope(|| {});
    /// let spans = capture.spans();
    /// assert_eq!(spans.matching(|s| s.span_kind == SpanKind::Internal).len(), 1);
    /// ```
    #[must_use]
    pub fn matching(&self, predicate: impl Fn(&SpanData) -> bool) -> Vec<&SpanData> {
        self.0.iter().filter(|s| predicate(s)).collect()
    }

    /// Every span having attribute `key` equal to `value`.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// for id in ["cart-1", "cart-2"] {
    ///     tracing::info_span!("load", cart.id = id).in_scope(|| {});
    /// }
    /// let spans = capture.spans();
    /// assert_eq!(spans.with_attribute("cart.id", "cart-2").len(), 1);
    /// ```
    #[must_use]
    pub fn with_attribute(&self, key: &str, value: impl ExpectedValue) -> Vec<&SpanData> {
        let value = value.into_value();
        self.matching(|s| attribute(s, key) == Some(&value))
    }

    /// The one span named `name` having attribute `key` equal to `value`: a lookup that
    /// works when the name repeats.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// for id in ["cart-1", "cart-2"] {
    ///     tracing::info_span!("load", cart.id = id).in_scope(|| {});
    /// }
    /// let spans = capture.spans();
    /// let second = spans.get_with("load", "cart.id", "cart-2");
    /// assert_eq!(second.name, "load");
    /// ```
    ///
    /// # Panics
    /// When there is none or several.
    #[track_caller]
    #[must_use]
    pub fn get_with(&self, name: &str, key: &str, value: impl ExpectedValue) -> &SpanData {
        let value = value.into_value();
        let found = self.matching(|s| s.name == name && attribute(s, key) == Some(&value));
        match found.as_slice() {
            [one] => one,
            found => panic!(
                "{} spans named `{name}` with {key}={}, wanted exactly one; {}",
                found.len(),
                show_value(&value),
                self.report_with_attributes()
            ),
        }
    }

    /// The parent of `span`, if it was captured.
    #[must_use]
    pub fn parent(&self, span: &SpanData) -> Option<&SpanData> {
        if span.parent_span_id == SpanId::INVALID {
            return None;
        }
        self.0.iter().find(|p| {
            p.span_context.span_id() == span.parent_span_id
                && p.span_context.trace_id() == span.span_context.trace_id()
        })
    }

    /// The direct children of `span`.
    #[must_use]
    pub fn children(&self, span: &SpanData) -> Vec<&SpanData> {
        self.0
            .iter()
            .filter(|c| {
                c.parent_span_id == span.span_context.span_id()
                    && c.span_context.trace_id() == span.span_context.trace_id()
            })
            .collect()
    }

    /// Whether `ancestor` is `span`'s parent, grandparent, ...
    #[must_use]
    pub fn is_descendant_of(&self, span: &SpanData, ancestor: &SpanData) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_context == ancestor.span_context {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }

    /// Whether `span` has no parent.
    #[must_use]
    pub fn is_root(&self, span: &SpanData) -> bool {
        span.parent_span_id == SpanId::INVALID
    }

    /// The captured span `link` of `span` points to, if any.
    fn link_target(&self, link: &opentelemetry::trace::Link) -> Option<&SpanData> {
        // By ids: a link read from stored metadata is remote, the span itself is not.
        self.0.iter().find(|s| {
            s.span_context.span_id() == link.span_context.span_id()
                && s.span_context.trace_id() == link.span_context.trace_id()
        })
    }

    /// The names of the spans `span` links to (`<trace>/<span> (not captured)` for a span
    /// outside the capture).
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("alone").in_scope(|| {});
    /// let spans = capture.spans();
    /// assert!(spans.link_names(spans.get("alone")).is_empty());
    /// ```
    #[must_use]
    pub fn link_names(&self, span: &SpanData) -> Vec<String> {
        span.links
            .links
            .iter()
            .map(|link| match self.link_target(link) {
                Some(target) => target.name.to_string(),
                None => format!(
                    "{}/{} (not captured)",
                    link.span_context.trace_id(),
                    link.span_context.span_id()
                ),
            })
            .collect()
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
            "`{child}` is not a child of `{parent}` (its parent: {}); {}",
            self.parent(c)
                .map_or_else(|| "none captured".to_owned(), |p| format!("`{}`", p.name)),
            self.report()
        );
    }

    /// Asserts that the span named `descendant` is below the span named `ancestor`, at any
    /// depth.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("a").in_scope(|| {
    ///     tracing::info_span!("b").in_scope(|| tracing::info_span!("c").in_scope(|| {}))
    /// });
    /// capture.spans().assert_descendant_of("c", "a");
    /// ```
    ///
    /// # Panics
    /// When it is not.
    #[track_caller]
    pub fn assert_descendant_of(&self, descendant: &str, ancestor: &str) {
        let (d, a) = (self.get(descendant), self.get(ancestor));
        assert!(
            self.is_descendant_of(d, a),
            "`{descendant}` is not below `{ancestor}`; {}",
            self.report()
        );
    }

    /// Asserts that no span named `name` was captured.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// capture.spans().assert_no_span("command.PlaceOrder");
    /// ```
    ///
    /// # Panics
    /// When one was.
    #[track_caller]
    pub fn assert_no_span(&self, name: &str) {
        let found = self.all(name).len();
        assert!(
            found == 0,
            "expected no span named `{name}`, found {found}; {}",
            self.report()
        );
    }

    /// Asserts that the span named `name` is a root with a link to the span named `target`.
    ///
    /// # Panics
    /// When it is not: the message names what it links to instead.
    #[track_caller]
    pub fn assert_linked_root(&self, name: &str, target: &str) {
        let (s, t) = (self.get(name), self.get(target));
        assert!(
            self.is_root(s),
            "`{name}` is not a root (its parent: {}); {}",
            self.parent(s)
                .map_or_else(|| "not captured".to_owned(), |p| format!("`{}`", p.name)),
            self.report()
        );
        assert!(
            s.links
                .links
                .iter()
                .any(|l| l.span_context.span_id() == t.span_context.span_id()
                    && l.span_context.trace_id() == t.span_context.trace_id()),
            "`{name}` has no link to `{target}`; it links to {:?}; {}",
            self.link_names(s),
            self.report()
        );
    }

    /// Asserts that `span` has attribute `key` equal to `value` (typed: `"cart-1"`, `2`,
    /// `true`, ...).
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("load", cart.id = "cart-1", lines = 2).in_scope(|| {});
    /// let spans = capture.spans();
    /// let load = spans.get("load");
    /// spans.assert_attribute(load, "cart.id", "cart-1");
    /// spans.assert_attribute(load, "lines", 2);
    /// ```
    ///
    /// # Panics
    /// When it has not, naming the span and listing its attributes.
    #[track_caller]
    pub fn assert_attribute(&self, span: &SpanData, key: &str, value: impl ExpectedValue) {
        let expected = value.into_value();
        let actual = attribute(span, key);
        if actual != Some(&expected) {
            panic!(
                "span `{}`: expected {key}={}, found {}\n  its attributes: {}",
                span.name,
                show_typed(&expected),
                actual.map_or_else(|| "no such attribute".to_owned(), show_typed),
                show_attributes(&span.attributes)
            );
        }
    }

    /// Asserts that `span` ended in error as the contract records it: status ERROR, and
    /// exactly one `exception` event with this `exception.type` and `exception.message`.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// #[eventsource_runtime::traced(err)]
    /// fn checkout() -> Result<(), std::io::Error> {
    ///     Err(std::io::Error::other("cart is empty"))
    /// }
    ///
    /// let capture = capture();
    /// let _ = checkout();
    /// let spans = capture.spans();
    /// spans.assert_error(spans.get("checkout"), "std::io::error::Error", "cart is empty");
    /// ```
    ///
    /// # Panics
    /// When the status is not ERROR or the exception event is missing or says otherwise.
    #[track_caller]
    pub fn assert_error(&self, span: &SpanData, error_type: &str, message: &str) {
        let Status::Error { .. } = &span.status else {
            panic!(
                "span `{}`: expected status ERROR, found {:?}; {}",
                span.name,
                span.status,
                self.report()
            );
        };
        let exceptions = events(span, attr::SPAN_EVENT_EXCEPTION);
        let [exception] = exceptions.as_slice() else {
            panic!(
                "span `{}`: expected one `exception` event, found {}; its events: {:?}",
                span.name,
                exceptions.len(),
                span.events
                    .events
                    .iter()
                    .map(|e| e.name.as_ref())
                    .collect::<Vec<_>>()
            );
        };
        let field = |key: &str| {
            exception
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.as_str().into_owned())
        };
        let (found_type, found_message) =
            (field(attr::EXCEPTION_TYPE), field(attr::EXCEPTION_MESSAGE));
        assert!(
            found_type.as_deref() == Some(error_type) && found_message.as_deref() == Some(message),
            "span `{}`: expected exception {error_type:?}: {message:?}, found {:?}: {:?}",
            span.name,
            found_type.unwrap_or_default(),
            found_message.unwrap_or_default(),
        );
    }

    /// Asserts that `span` did not end in error.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("fine").in_scope(|| {});
    /// let spans = capture.spans();
    /// spans.assert_ok(spans.get("fine"));
    /// ```
    ///
    /// # Panics
    /// When its status is ERROR.
    #[track_caller]
    pub fn assert_ok(&self, span: &SpanData) {
        if let Status::Error { description } = &span.status {
            panic!("span `{}` ended in error: {description}", span.name);
        }
    }

    /// The spans as an indented tree (roots in the order they started), with kinds,
    /// errors and what each link points to, for failure messages.
    #[must_use]
    pub fn tree(&self) -> String {
        self.render(false)
    }

    /// [`tree`](Self::tree) with every span's attributes, by their full keys (what
    /// [`attribute`] and [`assert_attribute`](Self::assert_attribute) take).
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("load", cart.id = "cart-1").in_scope(|| {});
    /// assert!(capture.spans().tree_with_attributes().contains("cart.id=cart-1"));
    /// ```
    #[must_use]
    pub fn tree_with_attributes(&self) -> String {
        self.render(true)
    }

    /// Roots: spans whose parent was not captured, in the order they started.
    pub(super) fn roots(&self) -> Vec<&SpanData> {
        let mut roots: Vec<&SpanData> =
            self.0.iter().filter(|s| self.parent(s).is_none()).collect();
        roots.sort_by_key(|s| s.start_time);
        roots
    }

    /// Children in the order they started.
    pub(super) fn children_by_start(&self, span: &SpanData) -> Vec<&SpanData> {
        let mut children = self.children(span);
        children.sort_by_key(|c| c.start_time);
        children
    }

    fn render(&self, with_attributes: bool) -> String {
        let mut out = String::new();
        for root in self.roots() {
            self.write_tree(&mut out, root, 0, with_attributes);
        }
        out
    }

    fn write_tree(&self, out: &mut String, span: &SpanData, depth: usize, attributes: bool) {
        let _ = write!(
            out,
            "{:indent$}{} [{}]",
            "",
            span.name,
            kind_name(&span.span_kind),
            indent = depth * 2
        );
        if let Status::Error { description } = &span.status {
            let _ = write!(out, " ERROR {description:?}");
        }
        if attributes {
            for kv in &span.attributes {
                let _ = write!(out, " {}={}", kv.key, show_value(&kv.value));
            }
        }
        for target in self.link_names(span) {
            let _ = write!(out, " -> {target}");
        }
        out.push('\n');
        for child in self.children_by_start(span) {
            self.write_tree(out, child, depth + 1, attributes);
        }
    }

    /// The captured tree and the spans still running, for failure messages.
    pub(super) fn report(&self) -> String {
        self.report_of(self.tree())
    }

    fn report_with_attributes(&self) -> String {
        self.report_of(self.tree_with_attributes())
    }

    fn report_of(&self, tree: String) -> String {
        let mut out = format!("captured:\n{tree}");
        if !self.1.is_empty() {
            let _ = writeln!(
                out,
                "still running when the spans were read (use `wait_spans`): {:?}",
                self.1.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
            );
        }
        out
    }
}

/// A kind as the tree and shapes spell it.
pub(super) fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// A value as the tree and shapes spell it: strings bare unless they would read as
/// something else, then quoted.
pub(super) fn show_value(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let s = s.as_str();
            let plain = !s.is_empty()
                && s.parse::<f64>().is_err()
                && s != "true"
                && s != "false"
                && !s.contains(|c: char| c.is_whitespace() || "\"[],".contains(c));
            if plain {
                s.to_owned()
            } else {
                format!("{s:?}")
            }
        }
        Value::Array(Array::String(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|s| show_value(&Value::String(s.clone())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// A value with its type, for a mismatch (`"2"` is not `2`).
fn show_typed(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?} (string)", s.as_str()),
        Value::I64(n) => format!("{n} (integer)"),
        Value::F64(n) => format!("{n} (float)"),
        Value::Bool(b) => format!("{b} (bool)"),
        other => format!("{other} (list)"),
    }
}

fn show_attributes(attributes: &[KeyValue]) -> String {
    if attributes.is_empty() {
        return "none".to_owned();
    }
    attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, show_value(&kv.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of attribute `key` on `span`.
///
/// ```
/// use eventsource_runtime::testing::{Value, attribute, capture};
///
/// let capture = capture();
/// tracing::info_span!("load", lines = 2).in_scope(|| {});
/// let spans = capture.spans();
/// assert_eq!(attribute(spans.get("load"), "lines"), Some(&Value::I64(2)));
/// ```
#[must_use]
pub fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
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

/// The value of attribute `key` on the first event named `event` of `span`: an event
/// lookup by key.
///
/// ```
/// use eventsource_runtime::testing::{Value, capture, event_attribute};
///
/// let capture = capture();
/// tracing::info_span!("pay").in_scope(|| tracing::info!(amount = 12, "charged"));
/// let spans = capture.spans();
/// assert_eq!(event_attribute(spans.get("pay"), "charged", "amount"), Some(&Value::I64(12)));
/// ```
#[must_use]
pub fn event_attribute<'a>(span: &'a SpanData, event: &str, key: &str) -> Option<&'a Value> {
    span.events
        .events
        .iter()
        .filter(|e| e.name == event)
        .flat_map(|e| e.attributes.iter())
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
