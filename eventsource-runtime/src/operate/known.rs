//! The projections a store knows, as the operations that change one name them: checked
//! before anything changes.

use std::collections::BTreeMap;

use super::status::{segment_of_name, split_projections};
use super::{OperateError, Stores};
use crate::projection::checkpoint::CheckpointRecord;
use crate::projection::segments::SegmentOwner;

/// A store's checkpoints, and its split projections with their segment counts.
pub(super) struct Known {
    pub records: Vec<CheckpointRecord>,
    pub splits: BTreeMap<String, u32>,
}

impl Known {
    pub async fn read(stores: &Stores) -> Result<Self, OperateError> {
        let records = (stores.checkpoints.checkpoints().await)
            .map_err(OperateError::store("cannot list the checkpoints"))?;
        let splits = split_projections(stores, &records).await?;
        Ok(Self { records, splits })
    }

    /// Whether `projection` has a checkpoint or is a split projection.
    pub fn has(&self, projection: &str) -> bool {
        self.records.iter().any(|r| r.projection == projection)
            || self.splits.contains_key(projection)
    }

    /// `name` as a whole projection the store knows, to `verb`: not found when it does not
    /// know it, invalid when it names one segment.
    pub fn whole(&self, name: &str, verb: &str) -> Result<(), OperateError> {
        if !self.has(name) {
            return Err(OperateError::NotFound(format!(
                "no projection `{name}` in this store (`eventsource status` lists them)"
            )));
        }
        if segment_of_name(name).is_some() {
            return Err(OperateError::Invalid(format!(
                "`{name}` is one segment's checkpoint: {verb} the whole projection"
            )));
        }
        Ok(())
    }

    /// The checkpoint at `name` (0 when there is none).
    pub fn position_of(&self, name: &str) -> u64 {
        self.records
            .iter()
            .find(|r| r.projection == name)
            .map_or(0, |r| r.position)
    }

    /// The names of `projection`'s segments' checkpoints.
    pub fn segment_checkpoints(&self, projection: &str) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| segment_of_name(&r.projection).is_some_and(|(of, _)| of == projection))
            .map(|r| r.projection.clone())
            .collect()
    }
}

/// `0/4 by worker-a (epoch 3), ...`: who holds which segment.
pub(super) fn held_by(owners: &[SegmentOwner]) -> String {
    let held: Vec<String> = owners
        .iter()
        .map(|o| {
            let owner = o.owner.as_deref().unwrap_or("?");
            format!("{} by {owner} (epoch {})", o.segment, o.epoch)
        })
        .collect();
    held.join(", ")
}

/// The refusal of a change to `projection` while its workers hold `owners`.
pub(super) fn held_by_workers(projection: &str, owners: &[SegmentOwner]) -> OperateError {
    OperateError::Refused(format!(
        "projection `{projection}` is held by its workers ({}): stop them first; nothing changed",
        held_by(owners)
    ))
}

/// The refusal of a change to `name` while a runner holds its lease, naming it when the
/// store can tell.
pub(super) async fn held_by_runner(stores: &Stores, name: &str) -> OperateError {
    let holder = (stores.checkpoints.lease_holder(name).await.ok().flatten())
        .map_or_else(|| "another worker".to_owned(), |holder| holder.to_string());
    OperateError::Refused(format!(
        "projection `{name}` is held by {holder}: stop it first; nothing changed"
    ))
}
