//! Retiring a projection no runner runs any more (the old name after a rebuild under a new
//! one, a name given by mistake): its checkpoints and parked events deleted, so that
//! `status` and the console stop listing it, red, for ever. Refused while a runner holds
//! its lease or a worker one of its segments.

use serde::Serialize;

use super::status::{segment_of_name, split_projections};
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
    if segment_of_name(projection).is_some() {
        return Err(OperateError::Invalid(format!(
            "`{projection}` is one segment's checkpoint: retire the whole projection"
        )));
    }
    let records = (stores.checkpoints.checkpoints().await)
        .map_err(OperateError::store("cannot list the checkpoints"))?;
    let splits = split_projections(stores, &records).await?;
    if let Some(&count) = splits.get(projection) {
        let checkpoints = records
            .iter()
            .filter(|r| segment_of_name(&r.projection).is_some_and(|(of, _)| of == projection))
            .map(|r| r.projection.clone())
            .collect();
        return retire_split(stores, projection, count, checkpoints).await;
    }
    if !records.iter().any(|r| r.projection == projection) {
        return Err(OperateError::NotFound(format!(
            "no projection `{projection}` in this store (`eventsource status` lists them)"
        )));
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
        let holder = (checkpoints.lease_holder(projection).await.ok().flatten())
            .map_or_else(|| "another runner".to_owned(), |holder| holder.to_string());
        return Err(OperateError::Refused(format!(
            "projection `{projection}` is held by {holder}: stop it first; nothing changed"
        )));
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
            Ok(Retire::Held(owners)) => {
                let held: Vec<String> = owners
                    .iter()
                    .map(|o| {
                        let owner = o.owner.as_deref().unwrap_or("?");
                        format!("{} by {owner} (epoch {})", o.segment, o.epoch)
                    })
                    .collect();
                return Err(OperateError::Refused(format!(
                    "projection `{projection}` is held by its workers ({}): stop them first; \
                     nothing changed",
                    held.join(", ")
                )));
            }
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
