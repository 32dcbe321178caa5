//! Why a runner stops.

use super::super::ProjectionError;
use crate::store::StoreError;

/// Why a runner stopped before it was told to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The projection's handler failed on one event `attempts` times in a row. The
    /// checkpoint is just before that event: the next run starts with it.
    #[error(
        "projection `{projection}` stopped: its handler failed {attempts} times on the \
         `{event_type}` event at position {position}"
    )]
    HandlerFailed {
        /// The projection's name.
        projection: String,
        /// The failing event's global position.
        position: u64,
        /// The failing event's type.
        event_type: String,
        /// How many times the handler was called on it.
        attempts: u32,
        /// The last failure.
        #[source]
        source: ProjectionError,
    },
    /// The event store or the checkpoint store failed (not transiently, or more often than
    /// [`max_store_attempts`](super::ProjectionRunner::max_store_attempts) allows in a row).
    #[error("projection `{projection}` stopped: {operation} failed")]
    Store {
        /// The projection's name.
        projection: String,
        /// What the runner was doing: `read_all`, `load checkpoint`, `save checkpoint`,
        /// `acquire lease`, `park event`, `unpark event` or `list parked events`.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A stored event cannot be read back and the runner's policy is
    /// [`UnreadablePolicy::Stop`](super::UnreadablePolicy::Stop). The checkpoint is just
    /// before that event: the next run stops there again until the row is repaired or
    /// removed, or the runner parks it
    /// ([`UnreadablePolicy::Park`](super::UnreadablePolicy::Park)).
    #[error(
        "projection `{projection}` stopped: the stored event at position {position} is unreadable"
    )]
    UnreadableEvent {
        /// The projection's name.
        projection: String,
        /// The unreadable event's global position.
        position: u64,
        /// The store's error, with the reason ([`StoreError::Corrupt`]).
        #[source]
        source: StoreError,
    },
    /// A stored event cannot be brought up to its type's current schema version (see
    /// [`upcast`](crate::event::upcast)) and the runner's policy is
    /// [`UnreadablePolicy::Stop`](super::UnreadablePolicy::Stop). The checkpoint is just
    /// before that event, as for [`UnreadableEvent`](Self::UnreadableEvent).
    #[error("projection `{projection}` stopped at the stored event at position {position}")]
    UpcastFailed {
        /// The projection's name.
        projection: String,
        /// The event's global position.
        position: u64,
        /// Why it could not be upcast: the event id, its type, both versions and the reason.
        #[source]
        source: Box<crate::event::upcast::UpcastError>,
    },
    /// The runner lost the projection's lease while processing (its database session
    /// ended): it stopped before the next handler call and saved nothing, since another
    /// runner may hold the projection now. Only the runs that end by themselves return
    /// it; [`run`](super::ProjectionRunner::run) waits for the lease again instead.
    #[error("projection `{projection}` stopped: its lease was lost")]
    LeaseLost {
        /// The projection's name.
        projection: String,
    },
    /// [`Projection::reset`](crate::projection::Projection::reset) failed, so [`rebuild`](super::ProjectionRunner::rebuild) did not
    /// replay (the checkpoint is already 0: the next run replays everything on top of the
    /// uncleared model).
    #[error("projection `{projection}` could not be reset for a rebuild")]
    ResetFailed {
        /// The projection's name.
        projection: String,
        /// The projection's error.
        #[source]
        source: ProjectionError,
    },
    /// A split projection's workers disagree on how many segments it has: the count
    /// asked for is not the one recorded. Changing it would hand events to other segments
    /// than those whose checkpoints hold them; rebuild the projection into a new name
    /// instead (see [`SegmentedRunner`](crate::projection::segments::SegmentedRunner)).
    #[error(
        "projection `{projection}` is split into {recorded} segments, not {asked}: to \
         change the count, rebuild it under a new name"
    )]
    SegmentCountChanged {
        /// The projection.
        projection: String,
        /// The count recorded by its first worker.
        recorded: u32,
        /// The count this worker was given.
        asked: u32,
    },
}
