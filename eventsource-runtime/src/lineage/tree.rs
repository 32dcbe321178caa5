//! [`CausationTree`]: the events of one correlation id, each under what caused it.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::event::EventEnvelope;
use crate::store::{EventStore, StoreError};

/// The events of one correlation id, each under what caused it, with the trace id of the
/// span that stored it: "everything that came from this command", across services.
///
/// An event's children are the events whose causation id is its id. An event whose cause
/// is not among the events (the command that decided it, or an event listed elsewhere) is
/// grouped under a [`Cause`] root of that id; an event with no causation id at all is a
/// root of its own. Nothing is lost and nothing panics: a cycle of causation ids (which
/// only a hand-written id can make) is broken at its earliest event, which becomes a root,
/// and [`notes`](Self::notes) says so.
///
/// [`Display`](fmt::Display) draws it as text; serialized (serde), it is JSON a tool can
/// draw: nested nodes, each with a `kind` (`cause` or `event`) and its `children`. An
/// event's keys are those of every other JSON an operator reads (`eventsource events
/// --json`, the console's events, dead letters):
///
/// ```json
/// {
///   "correlation_id": "0197c1de-…",
///   "roots": [
///     { "kind": "cause", "id": "0197c1de-…", "children": [
///       { "kind": "event", "event_id": "0197c1de-…", "event_type": "CheckedOut",
///         "aggregate_type": "Cart", "aggregate_id": "cart-1", "version": 4, "position": 4,
///         "recorded_at": "2025-01-31T12:00:00.123456789Z", "causation_id": "0197c1de-…",
///         "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "children": [ … ] }
///     ] }
///   ],
///   "notes": []
/// }
/// ```
///
/// ```
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
/// use eventsource_runtime::lineage::CausationTree;
///
/// let event = |id: u128, version, causation: &str| EventEnvelope {
///     event_id: uuid::Uuid::from_u128(id), stream: StreamId::new("Cart", "c-1"), version,
///     position: version, event_type: "CheckedOut".into(), schema_version: 1,
///     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(),
///     metadata: Metadata::new()
///         .with(Metadata::CORRELATION_ID, "req-1")
///         .with(Metadata::CAUSATION_ID, causation),
/// };
/// let checked_out = event(1, 1, "req-1");
/// let shipped = event(2, 2, "00000000-0000-0000-0000-000000000001");
/// let tree = CausationTree::from_events("req-1", [checked_out, shipped]);
/// assert_eq!(tree.roots.len(), 1, "one command");
/// assert_eq!(tree.len(), 2);
/// let text = tree.to_string();
/// assert!(text.contains("└─ cause req-1"), "{text}");
/// let json = serde_json::to_value(&tree).unwrap();
/// assert_eq!(json["roots"][0]["kind"], "cause");
/// assert_eq!(json["roots"][0]["children"][0]["children"][0]["kind"], "event");
/// assert_eq!(json["roots"][0]["children"][0]["children"][0]["version"], 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CausationTree {
    /// The correlation id the events share.
    pub correlation_id: String,
    /// What caused the events from outside them, and the events caused by nothing named.
    pub roots: Vec<Node>,
    /// What had to be mended to draw a tree (a cycle broken); empty as a rule.
    pub notes: Vec<String>,
    /// The event the tree was asked for, when it was asked for by an event's id
    /// ([`with_marked`](Self::with_marked)): its line ends with `◀` in the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marked: Option<Uuid>,
}

/// A node of a [`CausationTree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
// Each kind of node names itself (`"kind"`), here and as a child.
#[serde(untagged)]
#[non_exhaustive]
pub enum Node {
    /// A cause that is not one of the events: a command's id, or an event not listed.
    Cause(Cause),
    /// An event.
    Event(EventNode),
}

/// A cause that is not one of the tree's events, and the events it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename = "cause")]
#[non_exhaustive]
pub struct Cause {
    /// Its id: the causation id of its children.
    pub id: String,
    /// The events it caused, in the order given.
    pub children: Vec<EventNode>,
}

/// An event of a [`CausationTree`], and the events it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename = "event")]
#[non_exhaustive]
pub struct EventNode {
    /// The event's id.
    #[serde(rename = "event_id")]
    pub id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its aggregate's type.
    pub aggregate_type: String,
    /// Its aggregate's id.
    pub aggregate_id: String,
    /// Its version in its stream.
    pub version: u64,
    /// Its position in its store.
    pub position: u64,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Its causation id, if it has one.
    pub causation_id: Option<String>,
    /// The trace id of the span that stored it (from its `traceparent`), if any.
    pub trace_id: Option<String>,
    /// The events it caused, in the order given.
    pub children: Vec<EventNode>,
}

impl CausationTree {
    /// The tree of the events `store` holds for `correlation_id`.
    ///
    /// # Errors
    /// What [`EventStore::events_by_correlation`] fails with.
    pub async fn load<S: EventStore + ?Sized>(
        store: &S,
        correlation_id: &str,
    ) -> Result<Self, StoreError> {
        let events = store.events_by_correlation(correlation_id).await?;
        Ok(Self::from_events(correlation_id, events))
    }

    /// The tree of `events` (of `correlation_id`, say from several services' stores), each
    /// node's children in the order given. An event given twice (the same id) counts once.
    pub fn from_events(
        correlation_id: impl Into<String>,
        events: impl IntoIterator<Item = EventEnvelope>,
    ) -> Self {
        let mut seen = std::collections::HashSet::new();
        let events: Vec<EventEnvelope> = events
            .into_iter()
            .filter(|event| seen.insert(event.event_id))
            .collect();
        Links::of(&events).tree(correlation_id.into(), &events)
    }

    /// The tree with the event `event_id` marked (the one a person asked about), if it
    /// holds it; as it was otherwise.
    #[must_use]
    pub fn with_marked(mut self, event_id: Uuid) -> Self {
        if self.events().any(|event| event.id == event_id) {
            self.marked = Some(event_id);
        }
        self
    }

    /// How many events the tree holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.events().count()
    }

    /// Whether it holds no event.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Every event, depth first.
    pub fn events(&self) -> impl Iterator<Item = &EventNode> {
        let mut stack: Vec<&EventNode> = Vec::new();
        for root in self.roots.iter().rev() {
            match root {
                Node::Cause(cause) => stack.extend(cause.children.iter().rev()),
                Node::Event(event) => stack.push(event),
            }
        }
        std::iter::from_fn(move || {
            let event = stack.pop()?;
            stack.extend(event.children.iter().rev());
            Some(event)
        })
    }
}

/// Who caused whom, by index into the events.
struct Links {
    /// Each event's children (events whose causation id is its id).
    children: Vec<Vec<usize>>,
    /// Events whose causation id names no event given, grouped by it, in order of first
    /// appearance.
    causes: Vec<(String, Vec<usize>)>,
    /// Events with no causation id.
    uncaused: Vec<usize>,
}

impl Links {
    fn of(events: &[EventEnvelope]) -> Self {
        let index: HashMap<String, usize> = events
            .iter()
            .enumerate()
            .map(|(i, event)| (event.event_id.to_string(), i))
            .collect();
        let mut links = Self {
            children: vec![Vec::new(); events.len()],
            causes: Vec::new(),
            uncaused: Vec::new(),
        };
        for (i, event) in events.iter().enumerate() {
            let Some(causation) = event.metadata.causation_id() else {
                links.uncaused.push(i);
                continue;
            };
            match index.get(causation) {
                Some(&parent) => links.children[parent].push(i),
                None => match links.causes.iter_mut().find(|(id, _)| id == causation) {
                    Some((_, caused)) => caused.push(i),
                    None => links.causes.push((causation.to_owned(), vec![i])),
                },
            }
        }
        links
    }

    /// The tree: the roots drawn first, then what a cycle kept out of reach, each cycle
    /// broken at its earliest event.
    fn tree(&self, correlation_id: String, events: &[EventEnvelope]) -> CausationTree {
        let mut drawn = vec![false; events.len()];
        let mut roots = Vec::new();
        for (id, caused) in &self.causes {
            let children = caused
                .iter()
                .map(|&i| self.draw(i, events, &mut drawn))
                .collect();
            roots.push(Node::Cause(Cause {
                id: id.clone(),
                children,
            }));
        }
        for &i in &self.uncaused {
            roots.push(Node::Event(self.draw(i, events, &mut drawn)));
        }
        let mut notes = Vec::new();
        while let Some(i) = drawn.iter().position(|drawn| !drawn) {
            let event = &events[i];
            notes.push(format!(
                "cycle broken at event {} ({}): its causation id {} is one of the events it caused",
                event.event_id,
                event.event_type,
                event.metadata.causation_id().unwrap_or_default()
            ));
            roots.push(Node::Event(self.draw(i, events, &mut drawn)));
        }
        CausationTree {
            correlation_id,
            roots,
            notes,
            marked: None,
        }
    }

    /// The node of event `root` with what it caused, not yet `drawn`; built without
    /// recursion (a long chain of causes must not run out of stack).
    fn draw(&self, root: usize, events: &[EventEnvelope], drawn: &mut [bool]) -> EventNode {
        // Depth first: a node is finished once all its children are.
        let mut order = Vec::new();
        let mut stack = vec![root];
        drawn[root] = true;
        while let Some(i) = stack.pop() {
            order.push(i);
            for &child in &self.children[i] {
                if !drawn[child] {
                    drawn[child] = true;
                    stack.push(child);
                }
            }
        }
        let mut nodes: HashMap<usize, EventNode> = HashMap::new();
        for &i in order.iter().rev() {
            let mut node = EventNode::of(&events[i]);
            node.children = self.children[i]
                .iter()
                .filter_map(|child| nodes.remove(child))
                .collect();
            nodes.insert(i, node);
        }
        nodes
            .remove(&root)
            .unwrap_or_else(|| EventNode::of(&events[root]))
    }
}

impl EventNode {
    fn of(event: &EventEnvelope) -> Self {
        Self {
            id: event.event_id,
            event_type: event.event_type.to_string(),
            aggregate_type: event.aggregate_type().to_owned(),
            aggregate_id: event.aggregate_id().to_owned(),
            version: event.version,
            position: event.position,
            recorded_at: event.timestamp,
            causation_id: event.metadata.causation_id().map(str::to_owned),
            trace_id: event.metadata.trace_id(),
            children: Vec::new(),
        }
    }
}

/// Dropped without recursion: a long chain of causes must not run out of stack.
impl Drop for EventNode {
    fn drop(&mut self) {
        let mut below = std::mem::take(&mut self.children);
        while let Some(mut node) = below.pop() {
            below.append(&mut node.children);
        }
    }
}

/// Indented text, one line per node (`└─`, `├─`), each event with its stream, version,
/// position and trace id; then the notes.
impl fmt::Display for CausationTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "correlation {}", self.correlation_id)?;
        // (node, the prefix of its line, the prefix of its children's lines), depth first.
        let mut stack: Vec<(Line<'_>, String)> = Vec::new();
        let last = self.roots.len().saturating_sub(1);
        for (i, root) in self.roots.iter().enumerate().rev() {
            let line = match root {
                Node::Cause(cause) => Line::Cause(cause),
                Node::Event(event) => Line::Event(event),
            };
            stack.push((line, branch("", i == last)));
        }
        while let Some((line, prefix)) = stack.pop() {
            let (head, children) = match line {
                Line::Cause(cause) => (format!("cause {}", cause.id), &cause.children),
                Line::Event(event) if Some(event.id) == self.marked => {
                    (format!("{} ◀", event.describe()), &event.children)
                }
                Line::Event(event) => (event.describe(), &event.children),
            };
            writeln!(f, "{prefix}{head}")?;
            let indent = indent(&prefix);
            let last = children.len().saturating_sub(1);
            for (i, child) in children.iter().enumerate().rev() {
                stack.push((Line::Event(child), branch(&indent, i == last)));
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// A node to draw.
enum Line<'a> {
    Cause(&'a Cause),
    Event(&'a EventNode),
}

impl EventNode {
    /// `CheckedOut Cart/cart-1 v4 @4 trace 4bf9…` (the trace id whole).
    fn describe(&self) -> String {
        let trace = self.trace_id.as_deref().unwrap_or("none");
        format!(
            "{} {}/{} v{} @{} trace {}",
            self.event_type,
            self.aggregate_type,
            self.aggregate_id,
            self.version,
            self.position,
            trace
        )
    }
}

/// The prefix of a node's line under `indent`.
fn branch(indent: &str, last: bool) -> String {
    format!("{indent}{}", if last { "└─ " } else { "├─ " })
}

/// The indent of a node's children, from its own line's prefix.
fn indent(prefix: &str) -> String {
    match prefix.strip_suffix("└─ ") {
        Some(indent) => format!("{indent}   "),
        None => match prefix.strip_suffix("├─ ") {
            Some(indent) => format!("{indent}│  "),
            None => prefix.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Metadata, StreamId};

    fn event(id: u128, causation: Option<u128>) -> EventEnvelope {
        let mut metadata = Metadata::new().with(Metadata::CORRELATION_ID, "c");
        if let Some(causation) = causation {
            metadata.insert(
                Metadata::CAUSATION_ID,
                Uuid::from_u128(causation).to_string(),
            );
        }
        EventEnvelope {
            event_id: Uuid::from_u128(id),
            stream: StreamId::new("T", "t"),
            version: u64::try_from(id).unwrap(),
            position: u64::try_from(id).unwrap(),
            event_type: "E".into(),
            schema_version: 1,
            timestamp: Utc::now(),
            payload: serde_json::json!({}).into(),
            metadata,
        }
    }

    #[test]
    fn a_cycle_is_broken_and_said_and_orphans_are_roots() {
        // 1 <-> 2 (a cycle), 3 caused by 2, 4 with no cause, 5 caused by an unknown 99.
        let events = [
            event(1, Some(2)),
            event(2, Some(1)),
            event(3, Some(2)),
            event(4, None),
            event(5, Some(99)),
        ];
        let tree = CausationTree::from_events("c", events);
        assert_eq!(tree.len(), 5, "{tree}");
        assert_eq!(tree.notes.len(), 1, "{tree}");
        assert!(tree.notes[0].contains(&Uuid::from_u128(1).to_string()));
        let versions: Vec<u64> = tree.events().map(|e| e.version).collect();
        assert_eq!(versions, [5, 4, 1, 2, 3], "{tree}");
        let text = tree.to_string();
        assert!(text.contains("note: cycle broken"), "{text}");
    }

    #[test]
    fn a_long_chain_draws_without_recursion() {
        // Built, walked and dropped without recursion.
        let events = (1..=100_000).map(|i| event(i, (i > 1).then(|| i - 1)));
        let tree = CausationTree::from_events("c", events);
        assert_eq!(tree.len(), 100_000);
        assert!(tree.notes.is_empty());
        drop(tree);
        let events = (1..=500).map(|i| event(i, (i > 1).then(|| i - 1)));
        let text = CausationTree::from_events("c", events).to_string();
        assert_eq!(
            text.lines().count(),
            501,
            "the correlation, then 500 events"
        );
    }

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let trace_id = |traceparent: &str| {
            crate::event::Metadata::new()
                .with(crate::event::Metadata::TRACEPARENT, traceparent)
                .trace_id()
        };
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id("garbage"), None);
    }
}
