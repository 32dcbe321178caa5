//! Lineage: which request an event belongs to, and what caused it.
//!
//! Every event a [`CommandService`](crate::command::CommandService) stores carries two ids
//! in its [metadata](crate::event::Metadata):
//!
//! - the **correlation id** ([`Metadata::CORRELATION_ID`], `correlation_id`), shared by
//!   everything one request caused, across aggregates, services and brokers;
//! - the **causation id** ([`Metadata::CAUSATION_ID`], `causation_id`), the id of what
//!   caused the event directly: the command that decided it, or the event whose handler ran
//!   that command.
//!
//! A command takes them from, in this order:
//!
//! | | correlation id | causation id |
//! |---|---|---|
//! | the caller (the metadata of `execute_with_metadata`) | the caller's | the caller's |
//! | the message a bus handler is handling ([`Lineage::current`]) | the message's (its event id when it carries none) | the message's event id |
//! | otherwise | a new UUID v7 | the command id ([`Metadata::COMMAND_ID`], `execute_once`'s), else the new UUID |
//!
//! Each id is taken on its own: a caller that gives only a correlation id gets the causation
//! id of the next rows. A command thus needs no id of its own in the metadata (no
//! `command_id` is stamped: that key marks a command [`execute_once`] recognises): its events'
//! causation id is its id.
//!
//! Events appended without a command (through a [`Repository`] or an
//! [`EventStore`](crate::store::EventStore) directly) carry what their metadata was given,
//! nothing more.
//!
//! A [`Dispatcher`](crate::bus::Dispatcher) runs each handler inside the lineage of the
//! message it hands over, so a handler that runs a command passes the ids on with nothing to
//! write. The lineage is a task-local value: a handler that spawns a task to run its command
//! passes it on with [`Lineage::scope`]. A projection runner sets none: a projection that
//! runs commands (a process manager) runs them inside `Lineage::of_event(event).scope(..)`.
//!
//! Where the ids leave the process they take the names of the CloudEvents extensions
//! (`correlationid`, `causationid`): the wire headers `eventsource-correlationid` and
//! `eventsource-causationid` (see [`bus::wire`](crate::bus::wire)). Spans carry the correlation id as `eventsource.correlation.id`.
//!
//! Stores list the events of one correlation id in global order
//! ([`EventStore::events_by_correlation`](crate::store::EventStore::events_by_correlation),
//! indexed on SQLite and PostgreSQL), and a [`CausationTree`] draws them. Asked about one
//! event, [`find_event`] finds it by its id (a binary search of the log by the time its UUID
//! v7 carries), and [`CausationTree::with_marked`] marks it in its correlation's tree.
//!
//! ```
//! use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
//! use eventsource_runtime::lineage::Lineage;
//!
//! # let event = EventEnvelope {
//! #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
//! #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
//! #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(),
//! #     metadata: Metadata::new().with(Metadata::CORRELATION_ID, "checkout-7"),
//! # };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // What a command run while handling `event` takes (the dispatcher sets it for handlers).
//! let lineage = Lineage::of_event(&event);
//! assert_eq!(lineage.correlation_id(), "checkout-7");
//! assert_eq!(lineage.causation_id(), event.event_id.to_string());
//! assert_eq!(Lineage::current(), None);
//! let inside = lineage.clone().scope(async { Lineage::current() }).await;
//! assert_eq!(inside, Some(lineage));
//! # });
//! ```
//!
//! [`Metadata::CORRELATION_ID`]: crate::event::Metadata::CORRELATION_ID
//! [`Metadata::CAUSATION_ID`]: crate::event::Metadata::CAUSATION_ID
//! [`Metadata::COMMAND_ID`]: crate::event::Metadata::COMMAND_ID
//! [`execute_once`]: crate::command::CommandService::execute_once
//! [`Repository`]: crate::repository::Repository

mod find;
mod tree;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use crate::event::{EventEnvelope, Metadata};

pub use find::find_event;
pub use tree::{CausationTree, Cause, EventNode, Node};

tokio::task_local! {
    /// The lineage of the message the running handler is handling.
    static CURRENT: Lineage;
}

/// A correlation id and a causation id: what a command run now passes on to its events.
///
/// Cheap to clone. Equal when both ids are.
#[derive(Clone)]
pub struct Lineage(Ids);

/// Where a lineage's ids come from.
#[derive(Clone)]
enum Ids {
    /// Given as text.
    Given {
        correlation_id: Arc<str>,
        causation_id: Arc<str>,
    },
    /// A message's ([`Lineage::of_event`]): its id and metadata, its id written as text only
    /// when asked. Every message a handler is handed gets a lineage, and most handlers run
    /// no command that would read it.
    Message {
        event_id: uuid::Uuid,
        metadata: Metadata,
        id_text: OnceLock<Arc<str>>,
    },
}

impl Lineage {
    /// The lineage with these ids.
    pub fn new(correlation_id: impl Into<Arc<str>>, causation_id: impl Into<Arc<str>>) -> Self {
        Self(Ids::Given {
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
        })
    }

    /// What a command run while handling `event` passes on: the event's correlation id (its
    /// own id when it has none, as a message from a producer that stamped none), and the
    /// event's id as the causation id.
    #[must_use]
    pub fn of_event(event: &EventEnvelope) -> Self {
        Self(Ids::Message {
            event_id: event.event_id,
            metadata: event.metadata.clone(),
            id_text: OnceLock::new(),
        })
    }

    /// The correlation id.
    #[must_use]
    pub fn correlation_id(&self) -> &str {
        match &self.0 {
            Ids::Given { correlation_id, .. } => correlation_id,
            Ids::Message { metadata, .. } => match metadata.correlation_id() {
                Some(correlation_id) => correlation_id,
                None => self.causation_id(),
            },
        }
    }

    /// The causation id.
    #[must_use]
    pub fn causation_id(&self) -> &str {
        match &self.0 {
            Ids::Given { causation_id, .. } => causation_id,
            Ids::Message {
                event_id, id_text, ..
            } => id_text.get_or_init(|| {
                // Written into a buffer on the stack: one allocation (the `Arc`), no
                // formatter.
                let mut buffer = uuid::Uuid::encode_buffer();
                Arc::from(&*event_id.hyphenated().encode_lower(&mut buffer))
            }),
        }
    }

    /// The lineage of the message the current task is handling: set by the
    /// [`Dispatcher`](crate::bus::Dispatcher) around each handler, or by [`scope`](Self::scope).
    /// `None` outside of both.
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` with this lineage as the [current](Self::current) one: the commands it
    /// runs stamp these ids (unless their caller gives others). For a handler that spawns a
    /// task: `tokio::spawn(Lineage::current().unwrap().scope(work))`.
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, work)
    }
}

impl PartialEq for Lineage {
    fn eq(&self, other: &Self) -> bool {
        self.correlation_id() == other.correlation_id()
            && self.causation_id() == other.causation_id()
    }
}

impl Eq for Lineage {}

impl fmt::Debug for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lineage")
            .field("correlation_id", &self.correlation_id())
            .field("causation_id", &self.causation_id())
            .finish()
    }
}

/// Stamps a command's lineage on the `metadata` its events will carry (see the
/// [module](self)'s table), which then answers its
/// [`correlation_id`](Metadata::correlation_id) and [`causation_id`](Metadata::causation_id).
pub(crate) fn stamp(metadata: &mut Metadata) {
    let ambient = Lineage::current();
    if metadata.is_empty() && ambient.is_none() {
        // A command of its own (the common case): one new id, kept as its text alone until
        // a store writes it.
        let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
        crate::event::new_id().hyphenated().encode_lower(&mut id);
        *metadata = Metadata::from_lineage(id);
        return;
    }
    let mut fresh: Option<String> = None;
    let mut fresh_id = || {
        fresh
            .get_or_insert_with(|| crate::event::new_id().to_string())
            .clone()
    };
    let correlation_id = match (metadata.correlation_id(), &ambient) {
        (Some(_), _) => None,
        (None, Some(ambient)) => Some(ambient.correlation_id().to_owned()),
        (None, None) => Some(fresh_id()),
    };
    let causation_id = match (metadata.causation_id(), &ambient, metadata.command_id()) {
        (Some(_), _, _) => None,
        (None, Some(ambient), _) => Some(ambient.causation_id().to_owned()),
        (None, None, Some(command_id)) => Some(command_id.to_owned()),
        (None, None, None) => Some(fresh_id()),
    };
    if let Some(correlation_id) = correlation_id {
        metadata.insert(Metadata::CORRELATION_ID, correlation_id);
    }
    if let Some(causation_id) = causation_id {
        metadata.insert(Metadata::CAUSATION_ID, causation_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: Future>(work: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(work)
    }

    /// Stamps `metadata`: the lineage it then carries.
    fn stamped(metadata: &mut Metadata) -> Lineage {
        stamp(metadata);
        Lineage::new(
            metadata.correlation_id().unwrap(),
            metadata.causation_id().unwrap(),
        )
    }

    #[test]
    fn a_command_alone_starts_a_correlation_named_after_itself() {
        let mut metadata = Metadata::new();
        let lineage = stamped(&mut metadata);
        assert_eq!(lineage.correlation_id(), lineage.causation_id());
        assert!(lineage.correlation_id().parse::<uuid::Uuid>().is_ok());
        assert_eq!(metadata.correlation_id(), Some(lineage.correlation_id()));
        assert_eq!(metadata.causation_id(), Some(lineage.causation_id()));
        assert!(metadata.stored_json().is_some(), "kept as one JSON object");
        assert_eq!(metadata.keys().count(), 2);
    }

    #[test]
    fn a_command_id_is_the_causation_and_the_caller_wins() {
        let mut once = Metadata::new().with(Metadata::COMMAND_ID, "req-7");
        let lineage = stamped(&mut once);
        assert_eq!(lineage.causation_id(), "req-7");
        assert_ne!(lineage.correlation_id(), "req-7");
        assert_eq!(once.keys().count(), 3);

        let mut given = Metadata::new()
            .with(Metadata::CORRELATION_ID, "c-1")
            .with(Metadata::CAUSATION_ID, "k-1");
        let ambient = Lineage::new("c-other", "k-other");
        let lineage = run(ambient.scope(async { stamped(&mut given) }));
        assert_eq!(lineage, Lineage::new("c-1", "k-1"));
        assert_eq!(given.correlation_id(), Some("c-1"));
    }

    #[test]
    fn inside_a_handler_the_message_is_the_cause() {
        let lineage = run(Lineage::new("c-9", "event-3").scope(async {
            let mut metadata = Metadata::new().with(Metadata::CORRELATION_ID, "mine");
            let lineage = stamped(&mut metadata);
            assert_eq!(metadata.causation_id(), Some("event-3"));
            lineage
        }));
        assert_eq!(lineage, Lineage::new("mine", "event-3"));
        assert_eq!(Lineage::current(), None, "only inside the scope");
    }
}
