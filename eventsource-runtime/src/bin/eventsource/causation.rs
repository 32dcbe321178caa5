//! `eventsource causation ID`: the causation tree of a correlation id, or of an event's
//! correlation with the event marked (`operate::causation_tree_of` tells which), as text, JSON, Mermaid or
//! DOT, each event linked to its trace (the tree read and laid out by
//! `eventsource_runtime::operate`, which the console shares).

use eventsource_runtime::lineage::CausationTree;
use eventsource_runtime::operate;
use eventsource_runtime::store::EventStore;

use crate::args::{CausationQuery, TreeFormat};
use crate::exit::CliError;
use crate::output;
use eventsource_runtime::operate::OpenedStore;

pub async fn run(
    store: &OpenedStore,
    schema: &str,
    query: &CausationQuery,
    json: bool,
) -> Result<(), CliError> {
    let mut others = Vec::new();
    for target in &query.also_stores {
        others.push(crate::store::open_also(target, schema).await?);
    }
    let others: Vec<&dyn EventStore> = others.iter().map(|other| &*other.stores.events).collect();
    let tree = operate::causation_tree_of(
        &*store.stores.events,
        &others,
        &query.correlation,
        query.event,
    )
    .await?;
    let trace_url = query.trace_url.as_deref();
    match if json { TreeFormat::Json } else { query.format } {
        TreeFormat::Text => output::text(&tree.to_string()),
        TreeFormat::Json => output::json(&tree),
        TreeFormat::Mermaid => output::text(&mermaid(&tree, trace_url)),
        TreeFormat::Dot => output::text(&dot(&tree, trace_url)),
    }
}

/// A Mermaid flowchart: causes as rounded boxes, events as boxes, `click` to each trace.
pub fn mermaid(tree: &CausationTree, trace_url: Option<&str>) -> String {
    // Mermaid labels are quoted: a quote inside is its HTML entity.
    let quoted = |text: &str| text.replace('"', "#quot;");
    let mut out = String::from("flowchart TD\n");
    for node in operate::drawn_nodes(tree, trace_url) {
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
    for node in operate::drawn_nodes(tree, trace_url) {
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
