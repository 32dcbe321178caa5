//! What a load made: the root, and what its span says of it; and the replay of one stored
//! event through the decoding door.

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::event::EventEnvelope;
use crate::event::upcast::door;
use crate::event::upcast::instrument::{UpcastCounts, UpcastTally};

use super::RepositoryError;

impl<A: Aggregate> Loaded<A> {
    /// What the load span says of the load.
    pub(super) fn report(&self) -> LoadReport<'_> {
        LoadReport {
            replayed: self.replayed,
            version: self.root.version(),
            snapshot_used: self.snapshot_used,
            upcasts: &self.upcasts,
        }
    }
}

/// What the load span says of a load.
pub(super) struct LoadReport<'a> {
    /// The events applied after the snapshot (all of them without one).
    pub(super) replayed: usize,
    /// The aggregate's version after the load.
    pub(super) version: u64,
    pub(super) snapshot_used: bool,
    /// Those events that were upcast.
    pub(super) upcasts: &'a UpcastTally,
}

/// A loaded root, and how it was loaded (for the load span).
pub(super) struct Loaded<A: Aggregate> {
    pub(super) root: AggregateRoot<A>,
    /// The events applied after the snapshot (all of them without one).
    pub(super) replayed: usize,
    pub(super) snapshot_used: bool,
    /// The stored events of the command id looked for, if any.
    pub(super) command_events: Vec<EventEnvelope>,
    /// The replayed events that were upcast.
    pub(super) upcasts: UpcastTally,
}

/// Applies one stored event, through the decoding door (upcast, renamed or split when its
/// set says so). Returns the stored schema version when it was upcast.
pub(super) fn replay_one<A: Aggregate>(
    root: &mut AggregateRoot<A>,
    envelope: &EventEnvelope,
    counts: &mut UpcastCounts,
) -> Result<Option<u32>, RepositoryError> {
    root.advance_stored(envelope.version)?;
    let apply = |event| root.apply_part(&event);
    door::decode_set::<A::Event>(envelope, counts, apply).map_err(|source| {
        RepositoryError::Decode {
            stream: envelope.stream.clone(),
            version: envelope.version,
            source,
        }
    })
}
