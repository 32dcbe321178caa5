//! `eventsource causation ID`: the causation tree of a correlation id, or of an event's
//! correlation with the event marked (`asked.rs` tells which), as text, JSON, Mermaid or DOT,
//! each event linked to its trace.

use eventsource_runtime::lineage::{CausationTree, EventNode, Node};

use crate::args::{CausationQuery, TreeFormat};
use crate::exit::CliError;
use crate::output;
use crate::store::Stores;

pub async fn run(
    stores: &Stores,
    schema: &str,
    query: &CausationQuery,
    json: bool,
) -> Result<(), CliError> {
    let (correlation, marked, mut events) = crate::asked::events_of(stores, query).await?;
    let correlation = &correlation;
    let failed = || {
        CliError::store(format!(
            "cannot read the events of correlation {correlation}"
        ))
    };
    if !query.also_stores.is_empty() {
        for target in &query.also_stores {
            let other = Stores::open_target(target, schema).await?;
            let more = other.events.events_by_correlation(correlation).await;
            events.extend(more.map_err(failed())?);
        }
        // Each store's events are in its own order; across stores, time orders them.
        events.sort_by_key(|event| event.timestamp);
    }
    let tree = CausationTree::from_events(correlation.as_str(), events);
    let tree = match marked {
        Some(event_id) => tree.with_marked(event_id),
        None => tree,
    };
    if tree.is_empty() {
        return Err(CliError::NotFound(format!(
            "no event has the correlation id `{correlation}`"
        )));
    }
    let trace_url = query.trace_url.as_deref();
    match if json { TreeFormat::Json } else { query.format } {
        TreeFormat::Text => output::text(&tree.to_string()),
        TreeFormat::Json => output::json(&tree),
        TreeFormat::Mermaid => output::text(&mermaid(&tree, trace_url)),
        TreeFormat::Dot => output::text(&dot(&tree, trace_url)),
    }
}

/// A node of the drawing: its id, label, trace link, and the id of its parent.
struct Drawn {
    id: String,
    label: String,
    /// Whether it is a cause outside the events (a command).
    cause: bool,
    /// Whether it is the event asked about.
    marked: bool,
    link: Option<String>,
    parent: Option<String>,
}

/// Every node, depth first, with its parent, numbered `n0`, `n1`, ...
fn drawn(tree: &CausationTree, trace_url: Option<&str>) -> Vec<Drawn> {
    let mut nodes = Vec::new();
    let mut stack: Vec<(&EventNode, Option<String>)> = Vec::new();
    for root in &tree.roots {
        match root {
            Node::Cause(cause) => {
                let id = format!("n{}", nodes.len());
                nodes.push(Drawn {
                    id: id.clone(),
                    label: format!("cause {}", cause.id),
                    cause: true,
                    marked: false,
                    link: None,
                    parent: None,
                });
                stack.extend(cause.children.iter().rev().map(|e| (e, Some(id.clone()))));
            }
            Node::Event(event) => stack.push((event, None)),
            _ => {}
        }
        while let Some((event, parent)) = stack.pop() {
            let id = format!("n{}", nodes.len());
            nodes.push(Drawn {
                id: id.clone(),
                label: format!(
                    "{} {}/{} v{} @{}",
                    event.event_type,
                    event.aggregate_type,
                    event.aggregate_id,
                    event.version,
                    event.position
                ),
                cause: false,
                marked: Some(event.id) == tree.marked,
                link: output::trace_link(trace_url, event.trace_id.as_deref()),
                parent,
            });
            stack.extend(event.children.iter().rev().map(|e| (e, Some(id.clone()))));
        }
    }
    nodes
}

/// A Mermaid flowchart: causes as rounded boxes, events as boxes, `click` to each trace.
pub fn mermaid(tree: &CausationTree, trace_url: Option<&str>) -> String {
    // Mermaid labels are quoted: a quote inside is its HTML entity.
    let quoted = |text: &str| text.replace('"', "#quot;");
    let mut out = String::from("flowchart TD\n");
    for node in drawn(tree, trace_url) {
        let label = quoted(&node.label);
        if node.cause {
            out.push_str(&format!("    {}([\"{label}\"])\n", node.id));
        } else {
            out.push_str(&format!("    {}[\"{label}\"]\n", node.id));
        }
        if let Some(parent) = &node.parent {
            out.push_str(&format!("    {parent} --> {}\n", node.id));
        }
        if node.marked {
            out.push_str(&format!("    style {} stroke-width:4px\n", node.id));
        }
        if let Some(link) = &node.link {
            out.push_str(&format!(
                "    click {} \"{}\" _blank\n",
                node.id,
                quoted(link)
            ));
        }
    }
    out
}

/// A Graphviz digraph: causes as ellipses, events as boxes, each with its trace `URL`.
pub fn dot(tree: &CausationTree, trace_url: Option<&str>) -> String {
    let quoted = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "digraph causation {{\n    label=\"correlation {}\";\n    node [fontname=\"sans-serif\"];\n",
        quoted(&tree.correlation_id)
    );
    for node in drawn(tree, trace_url) {
        let shape = if node.cause { "ellipse" } else { "box" };
        let mut attributes = format!("label=\"{}\", shape={shape}", quoted(&node.label));
        if node.marked {
            attributes.push_str(", penwidth=3");
        }
        if let Some(link) = &node.link {
            attributes.push_str(&format!(", URL=\"{}\"", quoted(link)));
        }
        out.push_str(&format!("    {} [{attributes}];\n", node.id));
        if let Some(parent) = &node.parent {
            out.push_str(&format!("    {parent} -> {};\n", node.id));
        }
    }
    out.push_str("}\n");
    out
}
