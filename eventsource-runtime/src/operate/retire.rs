//! Retiring a projection no runner runs any more (the old name after a rebuild under a new
//! one, a name given by mistake): its checkpoints and parked events deleted, so that
//! `status` and the console stop listing it, red, for ever. Refused while a runner holds
//! its lease or a worker one of its segments.

use serde::Serialize;

use super::known::{Known, held_by_runner, held_by_workers};
use super::{OperateError, Stores};
use crate::projection::segments::Retire;
use crate::store::StoreError;

/// What [`retire`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Retired {
    /// The projection retired.
    pub projection: String,
    /// The checkpoints deleted (the projection's, or each of its segments').
    pub checkpoints: Vec<String>,
    /// A split projection's segment count; `None` for one that ran whole.
    pub segments: Option<u32>,
}

/// Retires `projection`: deletes its checkpoint (or each of its segments', with their
/// registration and workers where the store keeps them) and its parked events, holding its
/// lease (or through [`SegmentClaims::retire`](crate::projection::segments::SegmentClaims::retire),
/// which locks every segment). A runner started again under the name would start from 0.
///
/// The SQLite and in-memory stores keep leases and claims in the service's process, where
/// this cannot see them: make sure no runner of the projection runs.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
///
/// use eventsource_runtime::operate::{self, Stores};
/// use eventsource_runtime::projection::checkpoint::{CheckpointStore as _, InMemoryCheckpointStore};
/// use eventsource_runtime::store::InMemoryEventStore;
///
/// let checkpoints = Arc::new(InMemoryCheckpointStore::new());
/// checkpoints.save("orders-v1", 0).await?;
/// let stores = Stores::new(Arc::new(InMemoryEventStore::new()), checkpoints.clone());
/// let retired = operate::retire(&stores, "orders-v1").await?;
/// assert_eq!(retired.checkpoints, ["orders-v1"]);
/// assert!(checkpoints.checkpoints().await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// [`OperateError::NotFound`] when the store knows no such projection,
/// [`OperateError::Invalid`] when `projection` names one segment,
/// [`OperateError::Refused`] while a runner or worker holds it (nothing changed),
/// [`OperateError::Store`] when the store fails.
pub async fn retire(stores: &Stores, projection: &str) -> Result<Retired, OperateError> {
    let known = Known::read(stores).await?;
    known.whole(projection, "retire")?;
    if let Some(&count) = known.splits.get(projection) {
        let checkpoints = known.segment_checkpoints(projection);
        return retire_split(stores, projection, count, checkpoints).await;
    }
    retire_whole(stores, projection).await
}

/// A projection that runs whole: forgotten as the holder of its lease.
async fn retire_whole(stores: &Stores, projection: &str) -> Result<Retired, OperateError> {
    let checkpoints = &*stores.checkpoints;
    let lease = (checkpoints.try_acquire(projection).await).map_err(OperateError::store(
        format!("cannot take the lease on `{projection}`"),
    ))?;
    let Some(lease) = lease else {
        return Err(held_by_runner(stores, projection).await);
    };
    let forgotten = checkpoints.forget(projection).await;
    lease.release().await;
    forgotten.map_err(OperateError::store(format!("cannot retire `{projection}`")))?;
    Ok(Retired {
        projection: projection.to_owned(),
        checkpoints: vec![projection.to_owned()],
        segments: None,
    })
}

/// A split projection: retired by its claims store where it keeps them (all segments locked,
/// one transaction), else each segment's checkpoint forgotten.
async fn retire_split(
    stores: &Stores,
    projection: &str,
    count: u32,
    checkpoints: Vec<String>,
) -> Result<Retired, OperateError> {
    let retired = |segments| Retired {
        projection: projection.to_owned(),
        checkpoints: checkpoints.clone(),
        segments: Some(segments),
    };
    if let Some(claims) = &stores.claims {
        match claims.retire(projection).await {
            Ok(Retire::Done { segments }) => return Ok(retired(segments)),
            Ok(Retire::Held(owners)) => return Err(held_by_workers(projection, &owners)),
            // Known from its segments' checkpoint names only: forget those.
            Ok(Retire::NotSplit) | Err(StoreError::Unsupported { .. }) => {}
            Err(error) => {
                return Err(OperateError::store(format!("cannot retire `{projection}`"))(error));
            }
        }
    }
    for checkpoint in &checkpoints {
        (stores.checkpoints.forget(checkpoint).await)
            .map_err(OperateError::store(format!("cannot retire `{checkpoint}`")))?;
    }
    Ok(retired(count))
}
