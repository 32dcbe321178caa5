//! [`RepositoryError`]: what loading or saving an aggregate can fail with.

use crate::aggregate::OutOfSequence;
use crate::event::{DecodeError, StreamId};
use crate::store::{StoreError, VersionConflict};

/// What loading or saving an aggregate can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The store failed, or another writer saved first ([`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded into the aggregate's event type.
    #[error("cannot decode stored event {stream} version {version}")]
    Decode {
        /// The aggregate's stream.
        stream: StreamId,
        /// The undecodable event's version.
        version: u64,
        /// Why: unknown type name, or a payload that does not fit.
        #[source]
        source: DecodeError,
    },
    /// The stream's versions are not the gapless sequence a store guarantees.
    #[error(transparent)]
    OutOfSequence(#[from] OutOfSequence),
    /// A recorded event could not be serialized; nothing was saved.
    #[error("cannot serialize a `{event_type}` event of {stream}")]
    Encode {
        /// The aggregate's stream.
        stream: StreamId,
        /// The event's type name.
        event_type: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

impl RepositoryError {
    /// The version conflict, when that is what this error is.
    #[must_use]
    pub fn as_conflict(&self) -> Option<&VersionConflict> {
        match self {
            Self::Store(StoreError::Conflict(c)) => Some(c),
            _ => None,
        }
    }
}
