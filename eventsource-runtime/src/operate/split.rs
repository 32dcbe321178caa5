//! A split projection split again into a multiple of its segment count, without a rebuild
//! ([`SegmentClaims::resplit`](crate::projection::segments::SegmentClaims::resplit)).

use serde::Serialize;

use super::known::held_by_workers;
use super::reset::Moved;
use super::{OperateError, Stores};
use crate::projection::segments::Resplit;
use crate::store::{Segment, StoreError};

/// What [`split`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Split {
    /// The projection split again.
    pub projection: String,
    /// The segment count it had.
    pub from: u32,
    /// The segment count it has now: start its workers with it.
    pub to: u32,
    /// Each new segment's checkpoint (`from`: where it starts).
    pub checkpoints: Vec<Moved>,
}

/// Splits `projection`'s segments again, into `count`, a multiple of their count: each new
/// segment starts from the checkpoint of the old one that held its streams, in one
/// transaction, refused while a worker holds a segment.
///
/// # Errors
/// [`OperateError::Invalid`] when the store keeps no claims across processes (SQLite:
/// rebuild under a new name instead) or `count` is not a multiple above the current count,
/// [`OperateError::NotFound`] when `projection` is not split in this store,
/// [`OperateError::Refused`] while a worker holds a segment (nothing changed),
/// [`OperateError::Store`] when the store fails.
pub async fn split(stores: &Stores, projection: &str, count: u32) -> Result<Split, OperateError> {
    let name = projection;
    let Some(claims) = &stores.claims else {
        return Err(OperateError::Invalid(format!(
            "this store keeps segment claims in the service's process: rebuild `{name}` under \
             a new name with {count} segments instead"
        )));
    };
    let outcome = match claims.resplit(name, count).await {
        Err(StoreError::Unsupported { .. }) => {
            return Err(OperateError::Invalid(format!(
                "this store cannot split `{name}` again: rebuild it under a new name instead"
            )));
        }
        outcome => outcome.map_err(OperateError::store(format!("cannot split `{name}`")))?,
    };
    let from = match outcome {
        Resplit::Done { from } => from,
        Resplit::Held(owners) => return Err(held_by_workers(name, &owners)),
        Resplit::NotSplit => {
            return Err(OperateError::NotFound(format!(
                "`{name}` is not split into segments in this store"
            )));
        }
        Resplit::NotAMultiple { recorded } => {
            return Err(OperateError::Invalid(format!(
                "`{name}` has {recorded} segments: give a multiple of {recorded} above it; \
                 nothing changed"
            )));
        }
    };
    let mut checkpoints = Vec::new();
    for segment in (0..count).filter_map(|index| Segment::new(index, count)) {
        let checkpoint = segment.checkpoint_name(name);
        let from = (stores.checkpoints.load(&checkpoint).await)
            .map_err(OperateError::store(format!("cannot read `{checkpoint}`")))?;
        checkpoints.push(Moved {
            name: checkpoint,
            from,
        });
    }
    Ok(Split {
        projection: name.to_owned(),
        from,
        to: count,
        checkpoints,
    })
}
