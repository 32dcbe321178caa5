//! `eventsource projection rebuild NAME --as NEW`: a rebuild beside the old projection, as
//! the guides describe it ("rebuild the projection under a new name beside the old one, then
//! switch readers over"). The command line has no handler: it records NEW's checkpoint at 0
//! (so that `status` follows the rebuild from the start) and says what the operator does
//! next. NAME is left as it is and keeps running.

use serde::Serialize;

use crate::args::RebuildArgs;
use crate::exit::CliError;
use crate::known::Known;
use crate::output;
use crate::status::segment_of_name;
use crate::store::Stores;

/// What a rebuild beside set up.
#[derive(Debug, Serialize)]
struct Rebuild {
    projection: String,
    rebuilt_as: String,
    /// NEW's checkpoint: 0, every event to replay.
    checkpoint: u64,
    /// The store's head: how many events NEW replays.
    head: u64,
    /// NAME's segment count, when it is split (NEW's workers may run with any).
    segments: Option<u32>,
}

pub async fn run(stores: &Stores, args: &RebuildArgs, json: bool) -> Result<(), CliError> {
    let (name, new) = (args.name.as_str(), args.new_name.as_str());
    if new.trim().is_empty() || new == name || segment_of_name(new).is_some() {
        return Err(CliError::Usage(format!(
            "`{new}` cannot be the new name: give another projection name than `{name}` \
             (not a segment's `NAME[i/n]`)"
        )));
    }
    let checkpoints = &*stores.checkpoints;
    let known = Known::read(stores).await?;
    known.whole(name, "rebuild")?;
    let parked = checkpoints
        .parked_counts()
        .await
        .map_err(CliError::store("cannot count the parked events"))?;
    if known.has(new) || parked.contains_key(new) {
        return Err(CliError::Refused(format!(
            "`{new}` exists already in this store: choose another name (or `eventsource \
             projection reset {new} --to 0` to rebuild it in place); nothing changed"
        )));
    }
    let head = stores.head().await?;
    // A worker may run NEW already (deployed before this command): its checkpoint is its own.
    let lease = checkpoints
        .try_acquire(new)
        .await
        .map_err(CliError::store(format!("cannot take the lease on `{new}`")))?;
    let Some(lease) = lease else {
        return Err(CliError::Refused(format!(
            "`{new}` is already held by a running worker: it rebuilds already; nothing changed"
        )));
    };
    let created = checkpoints.reset_leased(&*lease, new, 0).await;
    lease.release().await;
    created.map_err(CliError::store(format!("cannot record `{new}`")))?;
    let rebuild = Rebuild {
        projection: name.to_owned(),
        rebuilt_as: new.to_owned(),
        checkpoint: 0,
        head,
        segments: known.splits.get(name).copied(),
    };
    if json {
        return output::json(&rebuild);
    }
    let workers = match rebuild.segments {
        Some(count) => format!(" (its workers may run with {count} segments, or another count)"),
        None => String::new(),
    };
    output::text(&format!(
        "{new}: created beside {name}, checkpoint 0: {head} event(s) to replay.\n\
         Next: deploy the projection's handler under the name `{new}` (its `name()`, a new \
         read model){workers}; it replays the store from the start while `{name}` keeps \
         running. When `eventsource status` shows `{new}` with no lag, switch readers to it, \
         then stop `{name}`.\n"
    ))
}
