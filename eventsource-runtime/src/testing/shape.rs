//! Whole-trace shape assertions: the expected tree written as text.

use std::collections::HashSet;
use std::fmt::Write as _;

use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

use super::ExpectedValue as _;
use super::spans::{CapturedSpans, show_value};
use crate::telemetry::otel::kind_name;

/// One line of an expected shape.
#[derive(Debug)]
struct Expected {
    name: String,
    kind: Option<String>,
    attributes: Vec<(String, Value)>,
    links: Option<Vec<String>>,
    children: Vec<Expected>,
}

/// Splits a line into tokens: whitespace-separated, double-quoted parts kept whole.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        if quoted {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else if c.is_whitespace() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            if c == '"' {
                quoted = true;
            }
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// An expected value as written: `"quoted"` a string, an integer, a float, `true`/`false`,
/// `[a,b]` a list of strings, anything else a string.
fn parse_value(text: &str) -> Value {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        let inner = &text[1..text.len() - 1];
        return inner
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
            .into_value();
    }
    if let Some(items) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let items: Vec<&str> = if items.is_empty() {
            Vec::new()
        } else {
            items
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .collect()
        };
        return items.as_slice().into_value();
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::I64(n);
    }
    if let Ok(b) = text.parse::<bool>() {
        return Value::Bool(b);
    }
    if let Ok(f) = text.parse::<f64>() {
        return Value::F64(f);
    }
    text.into_value()
}

fn parse_line(line: &str) -> Result<Expected, String> {
    let mut tokens = tokens(line).into_iter();
    let name = tokens.next().ok_or("an empty line")?;
    let mut expected = Expected {
        name,
        kind: None,
        attributes: Vec::new(),
        links: None,
        children: Vec::new(),
    };
    while let Some(token) = tokens.next() {
        if let Some(kind) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let known = ["internal", "client", "server", "producer", "consumer"];
            if !known.contains(&kind) {
                return Err(format!("unknown kind `[{kind}]`: one of {known:?}"));
            }
            expected.kind = Some(kind.to_owned());
        } else if token == "->" {
            let target = tokens
                .next()
                .ok_or("`->` needs the name of the linked span after it")?;
            expected.links.get_or_insert_with(Vec::new).push(target);
        } else if let Some((key, value)) = token.split_once('=') {
            expected
                .attributes
                .push((key.to_owned(), parse_value(value)));
        } else {
            return Err(format!(
                "`{token}`: expected `[kind]`, `key=value` or `-> linked span name`"
            ));
        }
    }
    Ok(expected)
}

/// Parses the indented text into a forest (two spaces, or any deeper indent, per level).
fn parse(text: &str) -> Result<Vec<Expected>, String> {
    // (indent, node) of the open ancestors.
    let mut stack: Vec<(usize, Expected)> = Vec::new();
    let mut roots = Vec::new();
    fn close(stack: &mut Vec<(usize, Expected)>, roots: &mut Vec<Expected>) {
        let (_, node) = stack.pop().expect("an open node");
        match stack.last_mut() {
            Some((_, parent)) => parent.children.push(node),
            None => roots.push(node),
        }
    }
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let node = parse_line(content).map_err(|e| format!("line {}: {e}", number + 1))?;
        while stack.last().is_some_and(|(open, _)| *open >= indent) {
            close(&mut stack, &mut roots);
        }
        stack.push((indent, node));
    }
    while !stack.is_empty() {
        close(&mut stack, &mut roots);
    }
    Ok(roots)
}

/// Writes an expected node as the comparison spells it.
fn write_expected(out: &mut String, node: &Expected, depth: usize) {
    let _ = write!(out, "{:indent$}{}", "", node.name, indent = depth * 2);
    if let Some(kind) = &node.kind {
        let _ = write!(out, " [{kind}]");
    }
    for (key, value) in &node.attributes {
        let _ = write!(out, " {key}={}", show_value(value));
    }
    for link in node.links.iter().flatten() {
        let _ = write!(out, " -> {link}");
    }
    out.push('\n');
    for child in &node.children {
        write_expected(out, child, depth + 1);
    }
}

/// Writes a captured span as the comparison spells it: what its expected counterpart
/// mentions (kind, the chosen attributes, links), or its name and kind when nothing
/// expected it.
fn write_captured(
    out: &mut String,
    spans: &CapturedSpans,
    span: &SpanData,
    expected: Option<&Expected>,
    depth: usize,
) {
    let _ = write!(out, "{:indent$}{}", "", span.name, indent = depth * 2);
    let kind = kind_name(&span.span_kind);
    match expected {
        Some(expected) => {
            if expected.kind.is_some() {
                let _ = write!(out, " [{kind}]");
            }
            for (key, _) in &expected.attributes {
                match super::attribute(span, key) {
                    Some(value) => {
                        let _ = write!(out, " {key}={}", show_value(value));
                    }
                    None => {
                        let _ = write!(out, " {key}=<missing>");
                    }
                }
            }
            if expected.links.is_some() {
                for target in spans.link_names(span) {
                    let _ = write!(out, " -> {target}");
                }
            }
        }
        None => {
            let _ = write!(out, " [{kind}]");
        }
    }
    out.push('\n');
    let children = spans.children_by_start(span);
    let no_children = Vec::new();
    let expected_children = expected.map_or(&no_children, |e| &e.children);
    for (child, expected) in pair(spans, &children, expected_children) {
        write_captured(out, spans, child, expected, depth + 1);
    }
}

/// Pairs captured siblings with expected ones: for each expected node in order, the first
/// unused captured span of its name whose chosen attributes match (else of its name);
/// then the captured spans nothing expected, in the order they started. Siblings that ran
/// concurrently compare whatever order they started in.
fn pair<'s, 'e>(
    spans: &CapturedSpans,
    captured: &[&'s SpanData],
    expected: &'e [Expected],
) -> Vec<(&'s SpanData, Option<&'e Expected>)> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    for node in expected {
        let same_name = |i: &usize| !used.contains(i) && captured[*i].name == node.name;
        let exact = (0..captured.len()).filter(same_name).find(|&i| {
            node.attributes
                .iter()
                .all(|(k, v)| super::attribute(captured[i], k) == Some(v))
                && node
                    .links
                    .as_ref()
                    .is_none_or(|links| *links == spans.link_names(captured[i]))
        });
        if let Some(i) = exact.or_else(|| (0..captured.len()).find(same_name)) {
            used.insert(i);
            out.push((captured[i], Some(node)));
        }
    }
    for (i, span) in captured.iter().enumerate() {
        if !used.contains(&i) {
            out.push((span, None));
        }
    }
    out
}

/// A line diff of `expected` and `actual` (longest common subsequence): `  ` both,
/// `- ` expected only, `+ ` captured only.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

impl CapturedSpans {
    /// Asserts that the captured spans form exactly the trees written in `expected`.
    ///
    /// One span per line, children indented under their parent (two spaces a level);
    /// roots are spans whose parent was not captured, and every captured span must appear.
    /// A line is the span's name, then what to check, each optional:
    /// - `[internal]`, `[client]`, `[server]`, `[producer]`, `[consumer]`: its kind;
    /// - `key=value`: an attribute by its full key; `"quoted"` is a string, `2` an
    ///   integer, `true` a bool, `1.5` a float, `[a,b]` a list of strings, any other
    ///   word a string;
    /// - `-> name`: a link to the captured span named `name` (all its links, in order).
    ///
    /// Siblings are matched by name (and chosen attributes), whatever order they ran in.
    /// Lines starting with `#` are comments.
    ///
    /// ```
    /// use eventsource_runtime::testing::capture;
    ///
    /// let capture = capture();
    /// tracing::info_span!("checkout", cart.id = "cart-1").in_scope(|| {
    ///     tracing::info_span!("load").in_scope(|| {});
    ///     tracing::info_span!("save", version = 2).in_scope(|| {});
    /// });
    /// capture.spans().assert_shape(
    ///     "
    ///     checkout [internal] cart.id=cart-1
    ///       load
    ///       save version=2
    ///     ",
    /// );
    /// ```
    ///
    /// # Panics
    /// When they differ, with a line diff (`-` expected, `+` captured) of the trees as
    /// the expectation spells them; or when `expected` cannot be read, naming the line.
    #[track_caller]
    pub fn assert_shape(&self, expected: &str) {
        let expected = match parse(expected) {
            Ok(expected) => expected,
            Err(error) => panic!("assert_shape: cannot read the expected shape, {error}"),
        };
        let mut want = String::new();
        for root in &expected {
            write_expected(&mut want, root, 0);
        }
        let mut got = String::new();
        for (span, node) in pair(self, &self.roots(), &expected) {
            write_captured(&mut got, self, span, node, 0);
        }
        if want != got {
            let mut message = format!(
                "the captured spans do not have the expected shape (- expected, + captured):\n{}",
                diff(&want, &got)
            );
            let _ = write!(message, "\n{}", self.report());
            panic!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kinds_attributes_links_and_nesting() {
        let forest = parse(
            "
            a [consumer] id=\"cart 1\" n=2 ok=true -> b
              c
                d
              e
            f
            ",
        )
        .unwrap();
        assert_eq!(forest.len(), 2);
        let a = &forest[0];
        assert_eq!(a.kind.as_deref(), Some("consumer"));
        assert_eq!(a.attributes[0].1, Value::from("cart 1"));
        assert_eq!(a.attributes[1].1, Value::I64(2));
        assert_eq!(a.attributes[2].1, Value::Bool(true));
        assert_eq!(a.links, Some(vec!["b".to_owned()]));
        assert_eq!(a.children.len(), 2);
        assert_eq!(a.children[0].children[0].name, "d");
    }

    #[test]
    fn a_bad_line_names_itself() {
        let error = parse("a\n  b [sideways]").unwrap_err();
        assert!(
            error.starts_with("line 2: unknown kind `[sideways]`"),
            "{error}"
        );
        let error = parse("a ->").unwrap_err();
        assert!(error.contains("`->` needs"), "{error}");
    }

    #[test]
    fn diff_marks_both_sides() {
        assert_eq!(diff("a\nb\n", "a\nc\n"), "  a\n- b\n+ c\n");
    }
}
