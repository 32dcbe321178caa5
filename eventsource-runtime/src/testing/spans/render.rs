//! [`CapturedSpans`] as text: the trees failure messages show, and values as they print.

use std::fmt::Write as _;

use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use super::CapturedSpans;
use crate::telemetry::otel::kind_name;

impl CapturedSpans {
    /// The spans as an indented tree (roots in the order they started), with kinds,
    /// errors and what each link points to, for failure messages.
    #[must_use]
    pub fn tree(&self) -> String {
        self.render(false)
    }

    /// [`tree`](Self::tree) with every span's attributes, by their full keys (what
    /// [`attribute`](super::attribute) and [`assert_attribute`](Self::assert_attribute) take).
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
    pub(in crate::testing) fn roots(&self) -> Vec<&SpanData> {
        let mut roots: Vec<&SpanData> =
            self.0.iter().filter(|s| self.parent(s).is_none()).collect();
        roots.sort_by_key(|s| s.start_time);
        roots
    }

    /// Children in the order they started.
    pub(in crate::testing) fn children_by_start(&self, span: &SpanData) -> Vec<&SpanData> {
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
    pub(in crate::testing) fn report(&self) -> String {
        self.report_of(self.tree())
    }

    pub(super) fn report_with_attributes(&self) -> String {
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

/// A value as the tree and shapes spell it: strings bare unless they would read as
/// something else, then quoted.
pub(in crate::testing) fn show_value(value: &Value) -> String {
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
pub(super) fn show_typed(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?} (string)", s.as_str()),
        Value::I64(n) => format!("{n} (integer)"),
        Value::F64(n) => format!("{n} (float)"),
        Value::Bool(b) => format!("{b} (bool)"),
        other => format!("{other} (list)"),
    }
}

pub(super) fn show_attributes(attributes: &[KeyValue]) -> String {
    if attributes.is_empty() {
        return "none".to_owned();
    }
    attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, show_value(&kv.value)))
        .collect::<Vec<_>>()
        .join(" ")
}
