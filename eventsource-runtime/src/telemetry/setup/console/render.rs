//! Rendering: one trace's spans as indented trees, one line per span in the compact view
//! (name, duration, the attributes that tell the story, links, error), every attribute, the
//! kind, links and errors on lines of their own in the full one.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;

use super::attributes;
use super::{ATTRIBUTES_PER_LINE, ConsoleDetail};
use crate::telemetry::otel::kind_name;

/// What the renderer asks about spans outside the ones it renders.
pub(super) trait SeenSpans {
    /// Whether span `id` of `trace` was printed already.
    fn printed(&self, trace: TraceId, id: SpanId) -> bool;
    /// The name of span `id` of `trace`, if this process has seen it (printed or buffered).
    fn name(&self, trace: TraceId, id: SpanId) -> Option<&str>;
}

/// Renders `spans` (of one trace) as trees: one per span whose parent is not among them.
pub(super) fn render(
    trace: TraceId,
    spans: &[SpanData],
    seen: &dyn SeenSpans,
    detail: ConsoleDetail,
) -> String {
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
            } else if seen.printed(trace, parent) {
                write!(out, " (continued, below {parent})")
            } else {
                write!(out, " (incomplete: parent {parent} had not ended)")
            };
        }
        out.push('\n');
        let node = Node {
            seen,
            detail,
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

/// What rendering a node needs.
struct Node<'a> {
    seen: &'a dyn SeenSpans,
    detail: ConsoleDetail,
    spans: &'a [SpanData],
    children: &'a HashMap<SpanId, Vec<&'a SpanData>>,
}

impl Node<'_> {
    /// The name of a linked span: one of this trace's, or one seen before.
    fn link_name(&self, cx: &SpanContext) -> Option<&str> {
        let (trace, id) = (cx.trace_id(), cx.span_id());
        self.spans
            .iter()
            .find(|s| s.span_context.trace_id() == trace && s.span_context.span_id() == id)
            .map(|s| s.name.as_ref())
            .or_else(|| self.seen.name(trace, id))
    }

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
        let child_prefix = if parent.is_none() {
            String::new()
        } else if last {
            format!("{prefix}   ")
        } else {
            format!("{prefix}│  ")
        };
        let kids = self.children.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let lead = format!("{prefix}{connector}");
        match self.detail {
            ConsoleDetail::Compact => self.write_line(out, span, parent, &lead),
            ConsoleDetail::Full => {
                let detail = format!(
                    "{child_prefix}{}",
                    if kids.is_empty() { "   " } else { "│  " }
                );
                self.write_lines(out, span, parent, &lead, &detail);
            }
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

    /// The compact view: `span` on one line, with the attributes that tell its story, its
    /// links and its error. `lead` starts the line.
    fn write_line(&self, out: &mut String, span: &SpanData, parent: Option<&SpanData>, lead: &str) {
        let _ = write!(out, "{lead}{}  {}", span.name, duration(span));
        let story = attributes::story(span, parent);
        if !story.is_empty() {
            let _ = write!(out, "  {}", story.join(" "));
        }
        for link in &span.links.links {
            // The name says what it is; the trace id (printed above it) where to find it.
            let cx = &link.span_context;
            let _ = match self.link_name(cx) {
                Some(name) => write!(out, "  ↳ linked to {name} in trace {}", cx.trace_id()),
                None => write!(out, "  ↳ {}", self.link_text(cx)),
            };
        }
        if let Status::Error { description } = &span.status {
            let _ = write!(out, "  ✗ error{}", error_text(span, description));
        }
        out.push('\n');
    }

    /// The full view: `span`'s line with its kind and every attribute, wrapping after
    /// [`ATTRIBUTES_PER_LINE`], then a line per link and one for its error. `lead` starts
    /// the span's line, `detail` the lines below it.
    fn write_lines(
        &self,
        out: &mut String,
        span: &SpanData,
        parent: Option<&SpanData>,
        lead: &str,
        detail: &str,
    ) {
        let _ = write!(
            out,
            "{lead}{}  {}  {}",
            span.name,
            kind_name(&span.span_kind),
            duration(span),
        );
        let all = attributes::all(span, parent);
        let mut lines = all.chunks(ATTRIBUTES_PER_LINE);
        if let Some(first) = lines.next() {
            let _ = write!(out, "  {}", first.join(" "));
        }
        out.push('\n');
        for more in lines {
            let _ = writeln!(out, "{detail}  {}", more.join(" "));
        }
        for link in &span.links.links {
            let _ = writeln!(out, "{detail}↳ {}", self.link_text(&link.span_context));
        }
        if let Status::Error { description } = &span.status {
            let _ = writeln!(out, "{detail}✗ error{}", error_text(span, description));
        }
    }

    /// `linked to <trace_id>/<span_id> (<name>)`, the name when the linked span was seen.
    fn link_text(&self, cx: &SpanContext) -> String {
        let mut text = format!("linked to {}/{}", cx.trace_id(), cx.span_id());
        if let Some(name) = self.link_name(cx) {
            let _ = write!(text, " ({name})");
        }
        text
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
