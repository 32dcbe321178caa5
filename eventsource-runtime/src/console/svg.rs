//! A causation tree drawn as inline SVG: one row per node, indented by depth, each edge
//! from a parent down and across to its child, each event a link to its trace.

use std::fmt::Write as _;

use crate::operate::DrawnNode;

const ROW: usize = 34;
const BOX: usize = 24;
const INDENT: usize = 28;
const MARGIN: usize = 12;
/// A label's width per character, in the page's 12px monospace font.
const CHAR: usize = 8;

/// `text` safe inside an XML text node or a quoted attribute.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The tree of `nodes` (depth first, as `operate::drawn_nodes` lays them out) as an `<svg>`
/// element.
pub(super) fn draw(correlation: &str, nodes: &[DrawnNode]) -> String {
    let x_of = |node: &DrawnNode| MARGIN + node.depth * INDENT;
    let y_of = |row: usize| MARGIN + row * ROW;
    let width_of = |node: &DrawnNode| node.label.chars().count() * CHAR + 16;
    let width = nodes
        .iter()
        .map(|node| x_of(node) + width_of(node))
        .max()
        .unwrap_or(0)
        + MARGIN;
    let height = y_of(nodes.len()) + MARGIN;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"causation\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"causation tree of {}\">",
        escaped(correlation)
    );
    let row_of = |id: &str| nodes.iter().position(|node| node.id == id);
    for (row, node) in nodes.iter().enumerate() {
        let Some(parent_row) = node.parent.as_deref().and_then(row_of) else {
            continue;
        };
        let parent_x = x_of(&nodes[parent_row]) + 10;
        let _ = write!(
            svg,
            "<path class=\"edge\" d=\"M{parent_x} {} V{} H{}\"/>",
            y_of(parent_row) + BOX,
            y_of(row) + BOX / 2,
            x_of(node)
        );
    }
    for (row, node) in nodes.iter().enumerate() {
        let (x, y) = (x_of(node), y_of(row));
        let class = match (node.cause, node.marked) {
            (true, _) => "cause",
            (false, false) => "event",
            (false, true) => "event marked",
        };
        let shape = format!(
            "<g class=\"node {class}\" id=\"{id}\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" \
             height=\"{BOX}\" rx=\"{r}\"/><text x=\"{tx}\" y=\"{ty}\">{label}</text></g>",
            id = escaped(&node.id),
            w = width_of(node),
            r = if node.cause { 12 } else { 3 },
            tx = x + 8,
            ty = y + 16,
            label = escaped(&node.label),
        );
        match &node.link {
            Some(link) => {
                let trace = node.trace_id.as_deref().unwrap_or_default();
                let _ = write!(
                    svg,
                    "<a class=\"trace-link\" href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\" data-trace-id=\"{}\">\
                     <title>trace {}</title>{shape}</a>",
                    escaped(link),
                    escaped(trace),
                    escaped(trace)
                );
            }
            None => svg.push_str(&shape),
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, label: &str, depth: usize, parent: Option<&str>) -> DrawnNode {
        DrawnNode {
            id: id.to_owned(),
            label: label.to_owned(),
            cause: parent.is_none(),
            marked: false,
            depth,
            trace_id: Some("abc".to_owned()),
            link: parent.map(|_| "http://jaeger/trace/abc?a=1&b=2".to_owned()),
            parent: parent.map(str::to_owned),
        }
    }

    #[test]
    fn labels_and_links_are_escaped_and_each_child_has_an_edge() {
        let nodes = [
            node("n0", "cause <script>", 0, None),
            node("n1", "Placed \"x\" & y", 1, Some("n0")),
        ];
        let svg = draw("req-<1>", &nodes);
        assert!(svg.contains("cause &lt;script&gt;"), "{svg}");
        assert!(svg.contains("Placed &quot;x&quot; &amp; y"), "{svg}");
        assert!(
            svg.contains("href=\"http://jaeger/trace/abc?a=1&amp;b=2\""),
            "{svg}"
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert_eq!(svg.matches("class=\"edge\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("class=\"trace-link\"").count(), 1, "{svg}");
    }
}
