//! What the checker finds wrong, by Jepsen's names, each with what a reader needs to find
//! it in the files: the event, the processes and their clocks.

use std::fmt;

use uuid::Uuid;

use super::expect::Delivery;

/// Where and when a handler committed an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSite {
    pub process: String,
    pub seq: u64,
    pub at_ms: u64,
    pub segment: Option<u32>,
    pub epoch: Option<u64>,
}

/// One thing wrong in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// An acknowledged append whose event a handler that must see it never committed.
    LostWrite {
        handler: String,
        event_id: Uuid,
        stream: String,
        appended_by: String,
        acknowledged_at_ms: u64,
    },
    /// An event committed more often than the handler's delivery allows.
    Duplicate {
        handler: String,
        event_id: Uuid,
        delivery: Delivery,
        reason: DuplicateReason,
        commits: Vec<CommitSite>,
    },
    /// An event committed that no append ever named.
    Unexpected {
        handler: String,
        event_id: Uuid,
        committed: CommitSite,
    },
    /// An event committed whose every append definitely failed.
    AbortedRead {
        handler: String,
        event_id: Uuid,
        committed: CommitSite,
        failed_by: String,
        failed_at_ms: u64,
    },
    /// A commit or checkpoint at an epoch after another process claimed the segment at a
    /// higher one.
    StaleEpochWrite {
        handler: String,
        segment: u32,
        epoch: u64,
        write: StaleWrite,
        process: String,
        at_ms: u64,
        claimed_by: String,
        claimed_epoch: u64,
        claimed_at_ms: u64,
    },
    /// A stream's event committed before one of a lower version.
    NonMonotonic {
        handler: String,
        stream: String,
        event_id: Uuid,
        version: u64,
        after_event_id: Uuid,
        after_version: u64,
        scope: OrderScope,
        committed: CommitSite,
    },
}

/// Why a repeated commit is not allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DuplicateReason {
    /// The handler is exactly once.
    ExactlyOnce,
    /// At least once, but committed again by the same process at the same epoch, and the
    /// relay published the event `published` times (fewer than it was committed: a second
    /// message would explain a second handling).
    NoTakeover { published: usize },
    /// At least once, after a takeover that handled `rehandled` events again, more than
    /// the `window` allowed; this event is past the window.
    BeyondWindow {
        takeover_process: String,
        rehandled: u64,
        window: u64,
    },
}

/// What a stale epoch wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaleWrite {
    Commit { event_id: Uuid },
    Checkpoint { position: u64 },
}

/// Where versions went backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderScope {
    /// Inside one process run at one epoch, in its own order.
    WithinRun,
    /// Among the first commits of the stream's events, across the whole handler, by clock.
    FirstCommits,
}

impl Anomaly {
    /// Jepsen's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::LostWrite { .. } => "LostWrite",
            Anomaly::Duplicate { .. } => "Duplicate",
            Anomaly::Unexpected { .. } => "Unexpected",
            Anomaly::AbortedRead { .. } => "AbortedRead",
            Anomaly::StaleEpochWrite { .. } => "StaleEpochWrite",
            Anomaly::NonMonotonic { .. } => "NonMonotonic",
        }
    }

    pub fn handler(&self) -> &str {
        match self {
            Anomaly::LostWrite { handler, .. }
            | Anomaly::Duplicate { handler, .. }
            | Anomaly::Unexpected { handler, .. }
            | Anomaly::AbortedRead { handler, .. }
            | Anomaly::StaleEpochWrite { handler, .. }
            | Anomaly::NonMonotonic { handler, .. } => handler,
        }
    }

    /// The event it is about (none for a stale checkpoint).
    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            Anomaly::LostWrite { event_id, .. }
            | Anomaly::Duplicate { event_id, .. }
            | Anomaly::Unexpected { event_id, .. }
            | Anomaly::AbortedRead { event_id, .. }
            | Anomaly::NonMonotonic { event_id, .. } => Some(*event_id),
            Anomaly::StaleEpochWrite { write, .. } => match write {
                StaleWrite::Commit { event_id } => Some(*event_id),
                StaleWrite::Checkpoint { .. } => None,
            },
        }
    }
}

impl fmt::Display for CommitSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seq {} at_ms {}", self.process, self.seq, self.at_ms)?;
        if let Some(segment) = self.segment {
            write!(f, " segment {segment}")?;
        }
        if let Some(epoch) = self.epoch {
            write!(f, " epoch {epoch}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [handler {}]: ", self.name(), self.handler())?;
        match self {
            Anomaly::LostWrite {
                event_id,
                stream,
                appended_by,
                acknowledged_at_ms,
                ..
            } => write!(
                f,
                "event {event_id} (stream {stream}) acknowledged to {appended_by} at_ms \
                 {acknowledged_at_ms}, never committed"
            ),
            Anomaly::Duplicate {
                event_id,
                delivery,
                reason,
                commits,
                ..
            } => {
                write!(
                    f,
                    "event {event_id} committed {} times, {delivery:?}",
                    commits.len()
                )?;
                match reason {
                    DuplicateReason::ExactlyOnce => {}
                    DuplicateReason::NoTakeover { published } => write!(
                        f,
                        ", again with no takeover (published {published} time(s))"
                    )?,
                    DuplicateReason::BeyondWindow {
                        takeover_process,
                        rehandled,
                        window,
                    } => write!(
                        f,
                        ", past the window: {takeover_process}'s takeover handled {rehandled} \
                         events again, {window} allowed"
                    )?,
                }
                let sites: Vec<String> = commits.iter().map(ToString::to_string).collect();
                write!(f, " ({})", sites.join("; "))
            }
            Anomaly::Unexpected {
                event_id,
                committed,
                ..
            } => write!(
                f,
                "event {event_id}, never appended, committed by {committed}"
            ),
            Anomaly::AbortedRead {
                event_id,
                committed,
                failed_by,
                failed_at_ms,
                ..
            } => write!(
                f,
                "event {event_id}, whose append failed at {failed_by} at_ms {failed_at_ms}, \
                 committed by {committed}"
            ),
            Anomaly::StaleEpochWrite {
                segment,
                epoch,
                write,
                process,
                at_ms,
                claimed_by,
                claimed_epoch,
                claimed_at_ms,
                ..
            } => {
                match write {
                    StaleWrite::Commit { event_id } => write!(f, "commit of event {event_id}")?,
                    StaleWrite::Checkpoint { position } => {
                        write!(f, "checkpoint at position {position}")?
                    }
                }
                write!(
                    f,
                    " by {process} at_ms {at_ms}, segment {segment} epoch {epoch}, after \
                     {claimed_by} claimed it at epoch {claimed_epoch} at_ms {claimed_at_ms}"
                )
            }
            Anomaly::NonMonotonic {
                stream,
                event_id,
                version,
                after_event_id,
                after_version,
                scope,
                committed,
                ..
            } => write!(
                f,
                "stream {stream}: event {event_id} (version {version}) committed by \
                 {committed} after event {after_event_id} (version {after_version}), \
                 {scope:?}"
            ),
        }
    }
}
