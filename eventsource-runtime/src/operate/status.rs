//! Every projection, relay and split projection a store knows, with its checkpoint, lag,
//! lease holder or segment owners, and parked events; and who holds the store's high-water
//! mark back, if anyone.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;

use super::{OperateError, Stores};
use crate::projection::checkpoint::{CheckpointRecord, LeaseHolder, RunnerStop};
use crate::projection::segments::SegmentOwner;
use crate::store::{BatchEnd, EventStore, MarkHolder, Segment};

/// How many of the status's queries run at once: round trips overlap, and a PostgreSQL
/// pool of ten connections keeps room for the rest.
const CONCURRENT_QUERIES: usize = 4;

/// Every projection a store knows, as [`status`] reads it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// The store's `db.system.name` (`postgresql`, `sqlite`).
    pub store: &'static str,
    /// The newest stored event's position (0: none).
    pub head: u64,
    /// The session holding the store's high-water mark back (PostgreSQL: an append still
    /// in flight), `None` when none does, on other stores, or when it could not be read.
    /// `mark_held_by` in JSON.
    #[serde(rename = "mark_held_by")]
    pub mark_holder: Option<MarkHolderView>,
    /// Every projection, relay and split projection, by name.
    pub projections: Vec<ProjectionStatus>,
}

/// The session holding the store's high-water mark back (see
/// [`EventStore::mark_holder`]): no projection or relay reads past its `position` until
/// its transaction ends. In JSON, the holder's fields, then `held_seconds` and `warn`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MarkHolderView {
    /// The session, as the store tells it.
    #[serde(flatten)]
    pub holder: MarkHolder,
    /// How long its transaction has run, in seconds, when known (0 for a start "in the
    /// future": clocks apart).
    pub held_seconds: Option<f64>,
    /// It has held the mark longer than
    /// [`MARK_HELD_WARN_AFTER`](crate::store::MARK_HELD_WARN_AFTER): readers wait on it.
    pub warn: bool,
}

impl From<MarkHolder> for MarkHolderView {
    fn from(holder: MarkHolder) -> Self {
        Self {
            held_seconds: holder.held_for().map(|held| held.as_secs_f64()),
            warn: holder.is_late(),
            holder,
        }
    }
}

/// One projection's (or relay's) place in the log.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// Its name (its checkpoint's).
    pub name: String,
    /// `projection`, `relay` or `split` (a projection split into segments).
    pub kind: &'static str,
    /// Its checkpoint (a split one's: its furthest-behind segment's).
    pub checkpoint: u64,
    /// When its checkpoint last moved, where the store keeps it.
    pub updated_at: Option<DateTime<Utc>>,
    /// How far behind it is.
    pub lag: CheckpointLag,
    /// Who holds its lease (none for a split one: see its segments' owners).
    pub lease: Option<LeaseView>,
    /// Its parked events (a split one's: its segments').
    pub parked: u64,
    /// Why its runner stopped, when the last runner to hold it stopped on an error and
    /// none has taken it since (`null` in JSON otherwise; a split one's: the latest of its
    /// segments' stops, whose error names the segment).
    pub stopped: Option<StopView>,
    /// A split projection's segments, in order (empty otherwise).
    pub segments: Vec<SegmentStatus>,
}

/// Why a projection's runner stopped ([`RunnerStop`]): `{"at": ..., "error": ...}`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StopView {
    /// When it stopped.
    pub at: DateTime<Utc>,
    /// The error it stopped on, with its sources, on one line.
    pub error: String,
}

impl From<RunnerStop> for StopView {
    fn from(stop: RunnerStop) -> Self {
        Self {
            at: stop.at,
            error: stop.error,
        }
    }
}

/// One segment of a split projection.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SegmentStatus {
    /// `index/count`.
    pub segment: String,
    /// Its checkpoint's name, `{projection}[{index}/{count}]`.
    pub checkpoint_name: String,
    /// Its checkpoint.
    pub checkpoint: u64,
    /// How far behind it is.
    pub lag: CheckpointLag,
    /// The worker claiming it, if any.
    pub owner: Option<String>,
    /// Its claim's epoch (0: never claimed).
    pub epoch: u64,
    /// Its owner did not renew its claim in time: any worker may take it.
    pub expired: bool,
    /// Its parked events.
    pub parked: u64,
    /// Why the runner that last claimed it stopped, when it stopped on an error and no
    /// worker has claimed it since (`null` in JSON otherwise).
    pub stopped: Option<StopView>,
}

/// How far behind a checkpoint is: the events after it (up to the head), and how old the
/// first of them is (0 when none waits; unknown when it cannot be read).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CheckpointLag {
    /// The events after the checkpoint, up to the head.
    pub events: u64,
    /// The age of the first event waiting, in seconds (0 when none waits).
    pub oldest_age_seconds: Option<f64>,
}

/// The database session holding a projection's lease.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LeaseView {
    /// The holder, as text (`pid 32319 (client 127.0.0.1, since ...)`).
    pub holder: String,
    /// Its server process.
    pub process_id: Option<u32>,
    /// Its application name.
    pub application: Option<String>,
    /// Its client address.
    pub client: Option<String>,
    /// Since when it holds the lease.
    pub since: Option<DateTime<Utc>>,
}

impl From<LeaseHolder> for LeaseView {
    fn from(holder: LeaseHolder) -> Self {
        Self {
            holder: holder.to_string(),
            process_id: holder.process_id,
            application: holder.application,
            client: holder.client,
            since: holder.since,
        }
    }
}

/// A split projection's segment's checkpoint name, `{projection}[{index}/{count}]`, read
/// back: the projection and the segment.
#[must_use]
pub fn segment_of_name(name: &str) -> Option<(&str, Segment)> {
    let (projection, rest) = name.rsplit_once('[')?;
    let (index, count) = rest.strip_suffix(']')?.split_once('/')?;
    let segment = Segment::new(index.parse().ok()?, count.parse().ok()?)?;
    (segment.checkpoint_name(projection) == name).then_some((projection, segment))
}

/// Every split projection and its segment count: from the claims store where it keeps
/// them, and from the segments' checkpoint names in `records`.
///
/// # Errors
/// [`OperateError::Store`] when the claims cannot be listed.
pub async fn split_projections(
    stores: &Stores,
    records: &[CheckpointRecord],
) -> Result<BTreeMap<String, u32>, OperateError> {
    let mut splits = match &stores.claims {
        Some(claims) => claims
            .split_projections()
            .await
            .map_err(OperateError::store("cannot list the split projections"))?,
        None => BTreeMap::new(),
    };
    for record in records {
        if let Some((projection, segment)) = segment_of_name(&record.projection) {
            splits
                .entry(projection.to_owned())
                .or_insert_with(|| segment.count());
        }
    }
    Ok(splits)
}

/// Every projection, relay and split projection the store knows, by name.
///
/// # Errors
/// [`OperateError::Store`] when a store fails.
pub async fn status(stores: &Stores) -> Result<StatusReport, OperateError> {
    let events = &*stores.events;
    let checkpoints = &*stores.checkpoints;
    let head = events
        .head_position()
        .await
        .map_err(OperateError::store("cannot read the store's head"))?
        .unwrap_or(0);
    // Informative: a store that cannot tell (a role without the privilege, say) does not
    // fail the status.
    let mark_holder = events.mark_holder().await.ok().flatten();
    let records = checkpoints
        .checkpoints()
        .await
        .map_err(OperateError::store("cannot list the checkpoints"))?;
    let parked = checkpoints
        .parked_counts()
        .await
        .map_err(OperateError::store("cannot count the parked events"))?;
    let splits = split_projections(stores, &records).await?;
    let by_name: HashMap<&str, &CheckpointRecord> = records
        .iter()
        .map(|record| (record.projection.as_str(), record))
        .collect();
    let parked_of = |name: &str| parked.get(name).copied().unwrap_or(0);

    // One or two queries per checkpoint: asked a few at a time (the pool has ten
    // connections), in order. A segment is listed under its projection; a split
    // projection's checkpoint from before its split no longer counts (its segments started
    // from it).
    let whole: Vec<&CheckpointRecord> = records
        .iter()
        .filter(|record| {
            segment_of_name(&record.projection).is_none()
                && !splits.contains_key(&record.projection)
        })
        .collect();
    // Made before they are streamed: a stream holding the closure that makes them is not
    // `Send` for every lifetime, as an axum handler's future must be.
    let asked: Vec<_> = whole
        .into_iter()
        .map(|record| whole_status(stores, record, head, parked_of(&record.projection)))
        .collect();
    let mut projections: Vec<ProjectionStatus> = stream::iter(asked)
        .buffered(CONCURRENT_QUERIES)
        .collect::<Vec<Result<_, OperateError>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for (name, count) in &splits {
        let owners = owners_of(stores, name).await?;
        let asked = (0..*count)
            .filter_map(|index| Segment::new(index, *count))
            .map(|segment| {
                let checkpoint_name = segment.checkpoint_name(name);
                let record = by_name.get(checkpoint_name.as_str()).copied();
                let owner = owners.get(&segment.index()).cloned();
                let parked = parked_of(&checkpoint_name);
                segment_status(
                    events,
                    segment,
                    checkpoint_name,
                    record,
                    owner,
                    parked,
                    head,
                )
            });
        let segments: Vec<SegmentStatus> = stream::iter(asked)
            .buffered(CONCURRENT_QUERIES)
            .collect()
            .await;
        projections.push(split_status(name, segments, &by_name));
    }
    projections.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StatusReport {
        store: events.system_name(),
        head,
        mark_holder: mark_holder.map(MarkHolderView::from),
        projections,
    })
}

/// A projection's (or relay's) row: its lease holder and lag.
async fn whole_status(
    stores: &Stores,
    record: &CheckpointRecord,
    head: u64,
    parked: u64,
) -> Result<ProjectionStatus, OperateError> {
    let name = record.projection.clone();
    let holder = stores
        .checkpoints
        .lease_holder(&name)
        .await
        .map_err(OperateError::store(format!(
            "cannot ask who holds `{name}`"
        )))?;
    let kind = if name.starts_with(crate::relay::DEFAULT_NAME) {
        "relay"
    } else {
        "projection"
    };
    Ok(ProjectionStatus {
        lag: lag_of(&*stores.events, Segment::WHOLE, record.position, head).await,
        kind,
        checkpoint: record.position,
        updated_at: record.updated_at,
        lease: holder.map(LeaseView::from),
        parked,
        stopped: record.stopped.clone().map(StopView::from),
        segments: Vec::new(),
        name,
    })
}

/// A segment's row: its owner, lag and stop.
async fn segment_status(
    events: &dyn EventStore,
    segment: Segment,
    checkpoint_name: String,
    record: Option<&CheckpointRecord>,
    owner: Option<SegmentOwner>,
    parked: u64,
    head: u64,
) -> SegmentStatus {
    let checkpoint = record.map_or(0, |r| r.position);
    SegmentStatus {
        stopped: record.and_then(|r| r.stopped.clone()).map(StopView::from),
        segment: segment.to_string(),
        lag: lag_of(events, segment, checkpoint, head).await,
        checkpoint,
        epoch: owner.as_ref().map_or(0, |o| o.epoch),
        expired: owner.as_ref().is_some_and(|o| o.expired),
        owner: owner.and_then(|o| o.owner),
        parked,
        checkpoint_name,
    }
}

/// A split projection's row: its furthest-behind segment's checkpoint and lag, the
/// segments' parked events, their latest stop.
fn split_status(
    name: &str,
    segments: Vec<SegmentStatus>,
    by_name: &HashMap<&str, &CheckpointRecord>,
) -> ProjectionStatus {
    let oldest = segments
        .iter()
        .map(|s| s.lag.oldest_age_seconds)
        .try_fold(0.0_f64, |oldest, age| Some(oldest.max(age?)));
    ProjectionStatus {
        name: name.to_owned(),
        kind: "split",
        checkpoint: segments.iter().map(|s| s.checkpoint).min().unwrap_or(0),
        updated_at: segments
            .iter()
            .filter_map(|s| by_name.get(s.checkpoint_name.as_str())?.updated_at)
            .max(),
        lag: CheckpointLag {
            events: segments.iter().map(|s| s.lag.events).max().unwrap_or(0),
            oldest_age_seconds: oldest,
        },
        lease: None,
        parked: segments.iter().map(|s| s.parked).sum(),
        stopped: (segments.iter())
            .filter_map(|s| s.stopped.clone())
            .max_by_key(|stop| stop.at),
        segments,
    }
}

/// The owners of `projection`'s segments, by index (none where the claims are not kept
/// across processes).
async fn owners_of(
    stores: &Stores,
    projection: &str,
) -> Result<HashMap<u32, SegmentOwner>, OperateError> {
    let Some(claims) = &stores.claims else {
        return Ok(HashMap::new());
    };
    let owners = claims
        .owners(projection)
        .await
        .map_err(OperateError::store(format!(
            "cannot list the owners of `{projection}`"
        )))?;
    Ok(owners
        .into_iter()
        .map(|owner| (owner.segment.index(), owner))
        .collect())
}

/// The lag of `segment` (the whole log: `Segment::WHOLE`) after `checkpoint`, as the
/// runners count it: up to the head, from the first event waiting; its age unknown when it
/// cannot be read.
async fn lag_of(
    store: &dyn EventStore,
    segment: Segment,
    checkpoint: u64,
    head: u64,
) -> CheckpointLag {
    let behind = CheckpointLag {
        events: head.saturating_sub(checkpoint),
        oldest_age_seconds: None,
    };
    let Ok(batch) = store.read_segment(segment, checkpoint + 1, 1).await else {
        return behind;
    };
    match (batch.events().first(), batch.end()) {
        (Some(first), _) => CheckpointLag {
            events: head.max(first.position).saturating_sub(checkpoint),
            oldest_age_seconds: Some(seconds_since(first.timestamp)),
        },
        (None, BatchEnd::Unreadable(_)) => behind,
        (None, _) => CheckpointLag {
            events: 0,
            oldest_age_seconds: Some(0.0),
        },
    }
}

fn seconds_since(at: DateTime<Utc>) -> f64 {
    let age = Utc::now() - at;
    age.num_milliseconds() as f64 / 1000.0
}
