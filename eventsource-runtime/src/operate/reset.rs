//! A projection's checkpoint moved (back for a replay, to 0 for a rebuild in place) as the
//! holder of its lease, or of every segment of a split one: refused while a runner or a
//! worker holds it; a position past the head, or an unknown projection, changes nothing.

use std::time::Duration;

use serde::Serialize;

use super::known::{Known, held_by, held_by_runner};
use super::{OperateError, Stores};
use crate::projection::segments::{Claim, SegmentClaims};
use crate::store::Segment;

/// The worker name an operator's tool claims segments under.
const OPERATOR: &str = "eventsource-cli";

/// How long an operator's claims last if the tool dies holding them.
const OPERATOR_CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`reset`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reset {
    /// The projection reset.
    pub projection: String,
    /// Each checkpoint reset (the projection's, or each segment's) and where it was.
    pub checkpoints: Vec<Moved>,
    /// The position each checkpoint is at now.
    pub to: u64,
}

/// A checkpoint and where it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Moved {
    /// The checkpoint's name (`NAME`, or a segment's `NAME[i/n]`).
    pub name: String,
    /// Its position before.
    pub from: u64,
}

/// Sets `projection`'s checkpoint to `to` (back as well as forward), as the holder of its
/// lease, or of every segment of a split one (each segment's checkpoint set). The runner
/// started afterwards hands over every event after `to` again.
///
/// The SQLite and in-memory stores keep leases and claims in the service's process, where
/// this cannot see them: make sure no runner of the projection runs.
///
/// # Errors
/// [`OperateError::NotFound`] when the store knows no such projection,
/// [`OperateError::Invalid`] when `projection` names one segment or `to` is past the
/// store's head, [`OperateError::Refused`] while a runner or worker holds it (nothing
/// changed), [`OperateError::Store`] when the store fails.
pub async fn reset(stores: &Stores, projection: &str, to: u64) -> Result<Reset, OperateError> {
    let known = Known::read(stores).await?;
    known.whole(projection, "reset")?;
    let head = (stores.events.head_position().await)
        .map_err(OperateError::store("cannot read the store's head"))?
        .unwrap_or(0);
    if to > head {
        return Err(OperateError::Invalid(format!(
            "position {to} is past the store's head ({head}): nothing changed"
        )));
    }
    let checkpoints = match known.splits.get(projection) {
        Some(&count) => reset_split(stores, &known, projection, count, to).await?,
        None => {
            let from = known.position_of(projection);
            reset_whole(stores, projection, to).await?;
            vec![Moved {
                name: projection.to_owned(),
                from,
            }]
        }
    };
    Ok(Reset {
        projection: projection.to_owned(),
        checkpoints,
        to,
    })
}

/// Resets a projection that runs whole, holding its lease.
async fn reset_whole(stores: &Stores, name: &str, to: u64) -> Result<(), OperateError> {
    let checkpoints = &*stores.checkpoints;
    let lease = (checkpoints.try_acquire(name).await).map_err(OperateError::store(format!(
        "cannot take the lease on `{name}`"
    )))?;
    let Some(lease) = lease else {
        return Err(held_by_runner(stores, name).await);
    };
    let reset = checkpoints.reset_leased(&*lease, name, to).await;
    lease.release().await;
    reset.map_err(OperateError::store(format!("cannot reset `{name}`")))
}

/// Resets every segment of a split projection, holding all of them where the store keeps
/// the claims across processes: refused while a worker holds one (its claim not expired).
async fn reset_split(
    stores: &Stores,
    known: &Known,
    name: &str,
    count: u32,
    to: u64,
) -> Result<Vec<Moved>, OperateError> {
    let segments: Vec<Segment> = (0..count).filter_map(|i| Segment::new(i, count)).collect();
    let Some(claims) = &stores.claims else {
        return reset_checkpoints(stores, known, name, &segments, to).await;
    };
    let held = (claims
        .claim(name, OPERATOR, segments.len(), OPERATOR_CLAIM_TIMEOUT)
        .await)
        .map_err(OperateError::store(format!(
            "cannot claim the segments of `{name}`"
        )))?;
    let mine: Vec<Claim> = held.iter().map(|claimed| claimed.claim).collect();
    if mine.len() < segments.len() {
        let busy = busy_segments(&**claims, name).await;
        release(&**claims, name, &mine).await;
        return Err(OperateError::Refused(format!(
            "projection `{name}` is held by its workers ({busy}): stop them first; nothing changed"
        )));
    }
    let result = reset_checkpoints(stores, known, name, &segments, to).await;
    release(&**claims, name, &mine).await;
    result
}

/// Resets each segment's checkpoint.
async fn reset_checkpoints(
    stores: &Stores,
    known: &Known,
    name: &str,
    segments: &[Segment],
    to: u64,
) -> Result<Vec<Moved>, OperateError> {
    let mut moved = Vec::new();
    for &segment in segments {
        let checkpoint = segment.checkpoint_name(name);
        let from = known.position_of(&checkpoint);
        (stores.checkpoints.reset(&checkpoint, to).await)
            .map_err(OperateError::store(format!("cannot reset `{checkpoint}`")))?;
        moved.push(Moved {
            name: checkpoint,
            from,
        });
    }
    Ok(moved)
}

/// The segments workers other than the operator's tool hold, as `held_by` lists them.
async fn busy_segments(claims: &dyn SegmentClaims, name: &str) -> String {
    let Ok(owners) = claims.owners(name).await else {
        return "owners unknown".to_owned();
    };
    let busy: Vec<_> = owners
        .into_iter()
        .filter(|o| !o.expired && o.owner.as_deref().is_some_and(|w| w != OPERATOR))
        .collect();
    held_by(&busy)
}

async fn release(claims: &dyn SegmentClaims, name: &str, mine: &[Claim]) {
    // A claim not given back expires after OPERATOR_CLAIM_TIMEOUT: nothing more to do.
    let _ = claims.release(name, OPERATOR, mine).await;
    let _ = claims.leave(name, OPERATOR).await;
}
