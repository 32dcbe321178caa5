//! The projections a store knows, as the commands that act on one name them: checked
//! before anything changes.

use std::collections::BTreeMap;

use eventsource_runtime::projection::checkpoint::CheckpointRecord;

use crate::exit::CliError;
use crate::status::{segment_of_name, split_projections};
use crate::store::Stores;

/// The projections a store knows: its checkpoints, and its split projections with their
/// segment counts.
pub struct Known {
    pub records: Vec<CheckpointRecord>,
    pub splits: BTreeMap<String, u32>,
}

impl Known {
    pub async fn read(stores: &Stores) -> Result<Self, CliError> {
        let records = stores
            .checkpoints
            .checkpoints()
            .await
            .map_err(CliError::store("cannot list the checkpoints"))?;
        let splits = split_projections(stores, &records).await?;
        Ok(Self { records, splits })
    }

    /// Whether `projection` has a checkpoint or is a split projection.
    pub fn has(&self, projection: &str) -> bool {
        self.records.iter().any(|r| r.projection == projection)
            || self.splits.contains_key(projection)
    }

    /// `name` as a whole projection the store knows, to `verb`: not found when it does not
    /// know it, a usage error when it names one segment.
    pub fn whole(&self, name: &str, verb: &str) -> Result<(), CliError> {
        if !self.has(name) {
            return Err(CliError::NotFound(format!(
                "no projection `{name}` in this store (`eventsource status` lists them)"
            )));
        }
        if segment_of_name(name).is_some() {
            return Err(CliError::Usage(format!(
                "`{name}` is one segment's checkpoint: {verb} the whole projection"
            )));
        }
        Ok(())
    }
}
