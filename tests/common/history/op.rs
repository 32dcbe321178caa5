//! What one line of a history says: who did what, when, and how it ended.
//!
//! The shape follows Jepsen's histories (an `invoke` and, later, its `ok`, `fail` or `info`)
//! so that a reader who knows them reads ours, and it stays plain JSON so that a process
//! which does not link this crate (an example binary, a script) can write the same lines:
//!
//! ```text
//! {"process":"appender-1","seq":0,"at_ms":1700000000000,"kind":"invoke","f":{"type":"append","stream":"order-1","event_ids":["…"]}}
//! {"process":"appender-1","seq":1,"at_ms":1700000000004,"kind":"ok","completes":0,"f":{"type":"append","stream":"order-1","event_ids":["…"],"positions":[17]}}
//! ```

use eventsource_runtime::event::EventEnvelope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One operation, or one half of it, as a process saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The process run that wrote it: a restarted process takes a new name
    /// (`consumer-1.r2`), since a takeover is told apart by the process that commits.
    pub process: String,
    /// Its order inside that process: 0, 1, 2… in the order the lines were written.
    pub seq: u64,
    /// Milliseconds since the UNIX epoch on that process's wall clock (which a clock-skew
    /// fault moves: comparisons across processes trust it, the order inside one does not).
    pub at_ms: u64,
    pub kind: OpKind,
    /// On a completion (`ok`, `fail`, `info`), the `seq` of the `invoke` it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completes: Option<u64>,
    pub f: Call,
}

/// How far an operation got, by Jepsen's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// About to be done; its outcome follows in another op (or never, if the process died).
    Invoke,
    /// Done, acknowledged.
    Ok,
    /// Definitely not done.
    Fail,
    /// Outcome unknown (a timeout, a lost connection): it may or may not have happened.
    Info,
}

/// What the operation was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Call {
    /// Events appended to a stream; on `ok`, the store's positions when it gave them.
    Append {
        stream: String,
        event_ids: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        positions: Option<Vec<u64>>,
    },
    /// Events a relay sent to the broker; `ok` once the broker acknowledged them.
    Publish { event_ids: Vec<Uuid> },
    /// A handler began to handle an event (written as an `invoke`).
    HandleStart(Handling),
    /// A handler's effects and its progress were committed (`ok`), rolled back (`fail`) or
    /// maybe committed (`info`).
    HandleCommit(Handling),
    /// A handler's checkpoint written (`ok`) at a position, for a segment and epoch.
    CheckpointSave {
        handler: String,
        position: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segment: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// A fault: `invoke` when it starts, `ok` when it stops, `info` for an instant one
    /// (a SIGKILL). The name is free text ("drop both ways", "SIGSTOP consumer-2").
    Nemesis { fault: String },
    /// A process took (`ok`) a handler's segment at an epoch, fencing out lower epochs.
    Claim {
        handler: String,
        segment: u32,
        epoch: u64,
    },
}

/// One event in a handler's hands: which event, where it sits, and under which claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handling {
    pub handler: String,
    pub event_id: Uuid,
    pub stream: String,
    /// The event's version in its stream (1, 2, 3…).
    pub version: u64,
    /// The event's position in the store's global order.
    pub position: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl Handling {
    /// `handler`'s handling of `event`, outside any segment.
    pub fn of(handler: &str, event: &EventEnvelope) -> Self {
        Self {
            handler: handler.to_owned(),
            event_id: event.event_id,
            stream: event.stream.to_string(),
            version: event.version,
            position: event.position,
            segment: None,
            epoch: None,
        }
    }
}

impl Call {
    /// What a completion of this call records: the same call, except that the completion
    /// of a `HandleStart` is its `HandleCommit`.
    pub fn completion(&self) -> Call {
        match self {
            Call::HandleStart(handling) => Call::HandleCommit(handling.clone()),
            other => other.clone(),
        }
    }
}
