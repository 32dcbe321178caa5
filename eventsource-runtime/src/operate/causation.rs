//! A correlation's causation tree, read from one store or from several services' stores,
//! and laid out as a list of nodes for drawing (Mermaid, DOT, SVG).

use serde::Serialize;
use uuid::Uuid;

use super::{OperateError, trace_link};
use crate::event::EventEnvelope;
use crate::lineage::{CausationTree, EventNode, Node, find_event};
use crate::store::EventStore;

/// The causation tree of `correlation` across `stores` (each service's own): each event
/// under the one whose handler caused it.
///
/// # Errors
/// [`OperateError::NotFound`] when no store has an event of the correlation;
/// [`OperateError::Store`] when one fails.
pub async fn causation_tree(
    stores: &[&dyn EventStore],
    correlation: &str,
) -> Result<CausationTree, OperateError> {
    causation_tree_with(Vec::new(), stores, correlation).await
}

/// The causation tree `id` names: a correlation id, else (or only, with `event_only`) an
/// event's id, whose correlation is drawn with the event marked (a command's id is often
/// the correlation id: an event of that id is marked too). Read from `store`, then from
/// `others` (other services' stores), where a correlation's events may all be.
///
/// # Errors
/// [`OperateError::Invalid`] when `event_only` and `id` is not a UUID,
/// [`OperateError::NotFound`] when no store has what it names, [`OperateError::Store`] when
/// one fails.
pub async fn causation_tree_of(
    store: &dyn EventStore,
    others: &[&dyn EventStore],
    id: &str,
    event_only: bool,
) -> Result<CausationTree, OperateError> {
    let asked = match asked(store, id, event_only).await {
        // A correlation whose events are all in the other services' stores.
        Err(OperateError::NotFound(_)) if !event_only && !others.is_empty() => Asked {
            correlation: id.trim().to_owned(),
            marked: None,
            events: Vec::new(),
        },
        asked => asked?,
    };
    let tree = causation_tree_with(asked.events, others, &asked.correlation).await?;
    Ok(match asked.marked {
        Some(event_id) => tree.with_marked(event_id),
        None => tree,
    })
}

/// What an id asked for in one store: the correlation to draw, the event to mark in it,
/// and the correlation's events there.
struct Asked {
    /// The correlation id to draw (an event without one is drawn alone, under its own id).
    correlation: String,
    marked: Option<Uuid>,
    events: Vec<EventEnvelope>,
}

/// What `id` names in `store` (see [`causation_tree_of`]).
async fn asked(store: &dyn EventStore, id: &str, event_only: bool) -> Result<Asked, OperateError> {
    let id = id.trim();
    let as_uuid = Uuid::parse_str(id).ok();
    let of_correlation = async |correlation: &str| {
        (store.events_by_correlation(correlation).await).map_err(OperateError::store(format!(
            "cannot read the events of correlation {correlation}"
        )))
    };
    if !event_only {
        let events = of_correlation(id).await?;
        if !events.is_empty() {
            return Ok(Asked {
                correlation: id.to_owned(),
                marked: as_uuid,
                events,
            });
        }
    }
    let Some(event_id) = as_uuid else {
        return Err(if event_only {
            OperateError::Invalid(format!("`{id}` is not an event id (a UUID)"))
        } else {
            OperateError::NotFound(format!("no event has the correlation id `{id}`"))
        });
    };
    let found = (find_event(store, event_id).await).map_err(OperateError::store(format!(
        "cannot look for event {event_id}"
    )))?;
    let Some(event) = found else {
        return Err(OperateError::NotFound(format!(
            "no event has the id or the correlation id `{id}`"
        )));
    };
    let Some(correlation) = event.metadata.correlation_id().map(str::to_owned) else {
        return Ok(Asked {
            correlation: event_id.to_string(),
            marked: Some(event_id),
            events: vec![event],
        });
    };
    Ok(Asked {
        events: of_correlation(&correlation).await?,
        correlation,
        marked: Some(event_id),
    })
}

/// [`causation_tree`] starting from `known`, the events of `correlation` already read from
/// a store not in `stores` (as the command line reads them while it finds out whether it
/// was given an event's id or a correlation's).
///
/// # Errors
/// As [`causation_tree`].
pub async fn causation_tree_with(
    known: Vec<EventEnvelope>,
    stores: &[&dyn EventStore],
    correlation: &str,
) -> Result<CausationTree, OperateError> {
    let several = stores.len() + usize::from(!known.is_empty()) > 1;
    let mut events = known;
    for store in stores {
        let more = store
            .events_by_correlation(correlation)
            .await
            .map_err(OperateError::store(format!(
                "cannot read the events of correlation {correlation}"
            )))?;
        events.extend(more);
    }
    if several {
        // Each store's events are in its own order; across stores, time orders them.
        events.sort_by_key(|event| event.timestamp);
    }
    let tree = CausationTree::from_events(correlation, events);
    if tree.is_empty() {
        return Err(OperateError::NotFound(format!(
            "no event has the correlation id `{correlation}`"
        )));
    }
    Ok(tree)
}

/// One node of a drawn tree: a cause outside the events (a command) or an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DrawnNode {
    /// Its id in the drawing: `n0`, `n1`, ... depth first.
    pub id: String,
    /// Its label: `cause ID`, or `TYPE AGGREGATE/ID vVERSION @POSITION`.
    pub label: String,
    /// Whether it is a cause outside the events (a command).
    pub cause: bool,
    /// Whether it is the event the tree was asked about
    /// ([`CausationTree::with_marked`]).
    pub marked: bool,
    /// How deep it is (0: a root).
    pub depth: usize,
    /// An event's trace id.
    pub trace_id: Option<String>,
    /// An event's trace link, from the template given.
    pub link: Option<String>,
    /// The id of its parent.
    pub parent: Option<String>,
}

/// Every node of `tree`, depth first, with its parent, numbered `n0`, `n1`, ..., each
/// event linked to its trace through `trace_url` (a template with `{trace_id}`).
#[must_use]
pub fn drawn_nodes(tree: &CausationTree, trace_url: Option<&str>) -> Vec<DrawnNode> {
    let mut nodes = Vec::new();
    let mut stack: Vec<(&EventNode, Option<String>, usize)> = Vec::new();
    for root in &tree.roots {
        match root {
            Node::Cause(cause) => {
                let id = format!("n{}", nodes.len());
                nodes.push(DrawnNode {
                    id: id.clone(),
                    label: format!("cause {}", cause.id),
                    cause: true,
                    marked: false,
                    depth: 0,
                    trace_id: None,
                    link: None,
                    parent: None,
                });
                let children = cause.children.iter().rev();
                stack.extend(children.map(|e| (e, Some(id.clone()), 1)));
            }
            Node::Event(event) => stack.push((event, None, 0)),
        }
        while let Some((event, parent, depth)) = stack.pop() {
            let id = format!("n{}", nodes.len());
            nodes.push(DrawnNode {
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
                depth,
                link: trace_link(trace_url, event.trace_id.as_deref()),
                trace_id: event.trace_id.clone(),
                parent,
            });
            let children = event.children.iter().rev();
            stack.extend(children.map(|e| (e, Some(id.clone()), depth + 1)));
        }
    }
    nodes
}
