//! A projection's parked events (those its runner could not read and set aside): listed,
//! their retry asked for, one forgotten.
//!
//! Retrying one needs the projection's own handler, which only the service has: a retry
//! marks the parked event ([`CheckpointStore::request_retry`]) and the projection's running
//! runner retries it on its next poll.
//!
//! [`CheckpointStore::request_retry`]: crate::projection::checkpoint::CheckpointStore::request_retry

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{OperateError, Stores};

/// A parked event as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ParkedView {
    /// Its global position.
    pub position: u64,
    /// Why it was parked.
    pub error: String,
    /// When.
    pub parked_at: DateTime<Utc>,
    /// Its retry was asked for and the running runner has not retried it yet.
    pub retry_requested: bool,
}

/// The events `projection` parked, each with whether its retry was asked for.
///
/// # Errors
/// [`OperateError::NotFound`] when the store knows no `projection` (no checkpoint, no parked
/// event), [`OperateError::Store`] when the store fails.
pub async fn parked_events(
    stores: &Stores,
    projection: &str,
) -> Result<Vec<ParkedView>, OperateError> {
    known(stores, projection).await?;
    let checkpoints = &*stores.checkpoints;
    let requested = (checkpoints.retry_requests(projection).await).map_err(OperateError::store(
        format!("cannot list the retries asked of `{projection}`"),
    ))?;
    let parked = (checkpoints.parked(projection).await).map_err(OperateError::store(format!(
        "cannot list the events `{projection}` parked"
    )))?;
    Ok(parked
        .into_iter()
        .map(|p| ParkedView {
            retry_requested: requested.contains(&p.position),
            position: p.position,
            error: p.error,
            parked_at: p.parked_at,
        })
        .collect())
}

/// Asks the running runner of `projection` to retry its parked event at `position`, or
/// every one it parked (`None`); returns the positions marked.
///
/// # Errors
/// [`OperateError::NotFound`] when the store knows no `projection`, when no event is parked
/// at `position`, or (`None`) when none is parked; [`OperateError::Store`] when the store
/// fails.
pub async fn retry_parked(
    stores: &Stores,
    projection: &str,
    position: Option<u64>,
) -> Result<Vec<u64>, OperateError> {
    known(stores, projection).await?;
    let checkpoints = &*stores.checkpoints;
    let one = position.is_some();
    let positions = match position {
        Some(position) => vec![position],
        None => (checkpoints.parked(projection).await)
            .map_err(OperateError::store(format!(
                "cannot list the events `{projection}` parked"
            )))?
            .iter()
            .map(|p| p.position)
            .collect(),
    };
    let mut requested = Vec::with_capacity(positions.len());
    for position in positions {
        let marked = (checkpoints.request_retry(projection, position).await).map_err(
            OperateError::store(format!(
                "cannot request the retry of event {position} of `{projection}`"
            )),
        )?;
        if marked {
            requested.push(position);
        } else if one {
            return Err(not_parked(projection, position));
        }
    }
    if requested.is_empty() {
        return Err(OperateError::NotFound(format!(
            "`{projection}` has no parked events; nothing changed"
        )));
    }
    Ok(requested)
}

/// Forgets the event `projection` parked at `position`: the projection never handles it.
///
/// # Errors
/// [`OperateError::NotFound`] when the store knows no `projection` or no event is parked at
/// `position`, [`OperateError::Store`] when the store fails.
pub async fn skip_parked(
    stores: &Stores,
    projection: &str,
    position: u64,
) -> Result<(), OperateError> {
    known(stores, projection).await?;
    let removed = (stores.checkpoints.unpark(projection, position).await).map_err(
        OperateError::store(format!("cannot unpark event {position} of `{projection}`")),
    )?;
    if removed {
        Ok(())
    } else {
        Err(not_parked(projection, position))
    }
}

fn not_parked(projection: &str, position: u64) -> OperateError {
    OperateError::NotFound(format!(
        "`{projection}` has no event parked at position {position}; nothing changed"
    ))
}

/// Fails unless the store knows `projection` (a checkpoint, or parked events).
async fn known(stores: &Stores, projection: &str) -> Result<(), OperateError> {
    let checkpoints = &*stores.checkpoints;
    let records = (checkpoints.checkpoints().await)
        .map_err(OperateError::store("cannot list the checkpoints"))?;
    if records.iter().any(|r| r.projection == projection) {
        return Ok(());
    }
    let parked = (checkpoints.parked_counts().await)
        .map_err(OperateError::store("cannot count the parked events"))?;
    if parked.contains_key(projection) {
        return Ok(());
    }
    Err(OperateError::NotFound(format!(
        "no projection `{projection}` in this store (`eventsource status` lists them)"
    )))
}
