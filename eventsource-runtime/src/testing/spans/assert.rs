//! [`CapturedSpans`]' assertions: each failure names the span and shows what was captured.

use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;

use super::render::{show_attributes, show_typed};
use super::{CapturedSpans, ExpectedValue, attribute, events};
use crate::telemetry::attributes as attr;

impl CapturedSpans {
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
}
