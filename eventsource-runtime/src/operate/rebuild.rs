//! A rebuild beside the running projection, as the guides describe it ("rebuild the
//! projection under a new name beside the old one, then switch readers over"). An
//! operator's tool has no handler: it records NEW's checkpoint at 0 (so that `status`
//! follows the rebuild from the start); NAME is left as it is and keeps running.

use serde::Serialize;

use super::known::Known;
use super::status::segment_of_name;
use super::{OperateError, Stores};

/// What [`rebuild`] set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rebuild {
    /// The projection rebuilt.
    pub projection: String,
    /// The new name it is rebuilt under.
    pub rebuilt_as: String,
    /// The new name's checkpoint: 0, every event to replay.
    pub checkpoint: u64,
    /// The store's head: how many events the new name replays.
    pub head: u64,
    /// The projection's segment count, when it is split (the new name's workers may run
    /// with any).
    pub segments: Option<u32>,
}

/// Records `new`'s checkpoint at 0 beside `projection`, under `new`'s lease: deploy the
/// projection's handler under `new` and it replays the store while `projection` keeps
/// serving.
///
/// # Errors
/// [`OperateError::Invalid`] when `new` is empty, `projection` itself or a segment's name,
/// [`OperateError::NotFound`] when the store knows no `projection`,
/// [`OperateError::Refused`] when `new` exists (a checkpoint, segments or parked events)
/// or a worker holds it already (nothing changed), [`OperateError::Store`] when the store
/// fails.
pub async fn rebuild(
    stores: &Stores,
    projection: &str,
    new: &str,
) -> Result<Rebuild, OperateError> {
    let name = projection;
    if new.trim().is_empty() || new == name || segment_of_name(new).is_some() {
        return Err(OperateError::Invalid(format!(
            "`{new}` cannot be the new name: give another projection name than `{name}` \
             (not a segment's `NAME[i/n]`)"
        )));
    }
    let checkpoints = &*stores.checkpoints;
    let known = Known::read(stores).await?;
    known.whole(name, "rebuild")?;
    let parked = (checkpoints.parked_counts().await)
        .map_err(OperateError::store("cannot count the parked events"))?;
    if known.has(new) || parked.contains_key(new) {
        return Err(OperateError::Refused(format!(
            "`{new}` exists already in this store: choose another name (or `eventsource \
             projection reset {new} --to 0` to rebuild it in place); nothing changed"
        )));
    }
    let head = (stores.events.head_position().await)
        .map_err(OperateError::store("cannot read the store's head"))?
        .unwrap_or(0);
    // A worker may run NEW already (deployed before this): its checkpoint is its own.
    let lease = (checkpoints.try_acquire(new).await).map_err(OperateError::store(format!(
        "cannot take the lease on `{new}`"
    )))?;
    let Some(lease) = lease else {
        return Err(OperateError::Refused(format!(
            "`{new}` is already held by a running worker: it rebuilds already; nothing changed"
        )));
    };
    let created = checkpoints.reset_leased(&*lease, new, 0).await;
    lease.release().await;
    created.map_err(OperateError::store(format!("cannot record `{new}`")))?;
    Ok(Rebuild {
        projection: name.to_owned(),
        rebuilt_as: new.to_owned(),
        checkpoint: 0,
        head,
        segments: known.splits.get(name).copied(),
    })
}
