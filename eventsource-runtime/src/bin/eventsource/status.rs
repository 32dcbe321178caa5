//! `eventsource status`: every projection, relay and split projection the store knows, with
//! its checkpoint, lag, lease holder or segment owners, and parked events.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use eventsource_runtime::projection::checkpoint::{CheckpointRecord, LeaseHolder};
use eventsource_runtime::projection::segments::SegmentOwner;
use eventsource_runtime::store::{BatchEnd, EventStore, Segment};
use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;

use crate::args::StatusArgs;
use crate::exit::CliError;
use crate::store::Stores;
use crate::{output, service_health};

/// How many of status's queries run at once: round trips overlap, and a PostgreSQL pool of
/// ten connections keeps room for the rest.
const CONCURRENT_QUERIES: usize = 4;

/// What `status` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The store's `db.system.name` (`postgresql`, `sqlite`).
    pub store: &'static str,
    /// The newest stored event's position (0: none).
    pub head: u64,
    pub projections: Vec<ProjectionStatus>,
    /// The running service's own report (`--health-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// `projection`, `relay` or `split` (a projection split into segments).
    pub kind: &'static str,
    /// Its checkpoint (a split one's: its furthest-behind segment's).
    pub checkpoint: u64,
    pub updated_at: Option<DateTime<Utc>>,
    pub lag: Lag,
    /// Who holds its lease (none for a split one: see its segments' owners).
    pub lease: Option<Lease>,
    pub parked: u64,
    pub segments: Vec<SegmentStatus>,
}

#[derive(Debug, Serialize)]
pub struct SegmentStatus {
    /// `index/count`.
    pub segment: String,
    /// Its checkpoint's name, `{projection}[{index}/{count}]`.
    pub checkpoint_name: String,
    pub checkpoint: u64,
    pub lag: Lag,
    pub owner: Option<String>,
    pub epoch: u64,
    /// Its owner did not renew its claim in time: any worker may take it.
    pub expired: bool,
    pub parked: u64,
}

/// How far behind: the events after the checkpoint (up to the head), and how old the
/// first of them is (0 when none waits; unknown when it cannot be read).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Lag {
    pub events: u64,
    pub oldest_age_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Lease {
    pub holder: String,
    pub process_id: Option<u32>,
    pub application: Option<String>,
    pub client: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

impl From<LeaseHolder> for Lease {
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

pub async fn run(stores: &Stores, args: &StatusArgs, json: bool) -> Result<(), CliError> {
    let mut report = gather(stores).await?;
    if let Some(url) = &args.health_url {
        report.service = Some(service_health::fetch(url).await?);
    }
    if json {
        return output::json(&report);
    }
    let mut text = as_text(&report);
    if let (Some(url), Some(service)) = (&args.health_url, &report.service) {
        text.push('\n');
        text.push_str(&service_health::as_text(url, service));
    }
    output::text(&text)
}

/// A split projection's segment's checkpoint name, `{projection}[{index}/{count}]`, read
/// back.
pub fn segment_of_name(name: &str) -> Option<(&str, Segment)> {
    let (projection, rest) = name.rsplit_once('[')?;
    let (index, count) = rest.strip_suffix(']')?.split_once('/')?;
    let segment = Segment::new(index.parse().ok()?, count.parse().ok()?)?;
    (segment.checkpoint_name(projection) == name).then_some((projection, segment))
}

/// Every split projection: from the claims store where it keeps them, and from the
/// segments' checkpoint names.
pub async fn split_projections(
    stores: &Stores,
    records: &[CheckpointRecord],
) -> Result<BTreeMap<String, u32>, CliError> {
    let mut splits = match &stores.claims {
        Some(claims) => claims
            .split_projections()
            .await
            .map_err(CliError::store("cannot list the split projections"))?,
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

pub async fn gather(stores: &Stores) -> Result<Report, CliError> {
    let events = &*stores.events;
    let checkpoints = &*stores.checkpoints;
    let head = events
        .head_position()
        .await
        .map_err(CliError::store("cannot read the store's head"))?
        .unwrap_or(0);
    let records = checkpoints
        .checkpoints()
        .await
        .map_err(CliError::store("cannot list the checkpoints"))?;
    let parked = checkpoints
        .parked_counts()
        .await
        .map_err(CliError::store("cannot count the parked events"))?;
    let splits = split_projections(stores, &records).await?;
    let by_name: HashMap<&str, &CheckpointRecord> = records
        .iter()
        .map(|record| (record.projection.as_str(), record))
        .collect();
    let parked_of = |name: &str| parked.get(name).copied().unwrap_or(0);

    // One or two queries per checkpoint: asked a few at a time (the pool has ten
    // connections), in order.
    let whole = records.iter().filter(|record| {
        // A segment is listed under its projection; a split projection's checkpoint from
        // before its split no longer counts (its segments started from it).
        segment_of_name(&record.projection).is_none() && !splits.contains_key(&record.projection)
    });
    let mut projections: Vec<ProjectionStatus> = stream::iter(whole)
        .map(|record| async move {
            let name = record.projection.clone();
            let holder = checkpoints
                .lease_holder(&name)
                .await
                .map_err(CliError::store(format!("cannot ask who holds `{name}`")))?;
            let kind = if name.starts_with(eventsource_runtime::relay::DEFAULT_NAME) {
                "relay"
            } else {
                "projection"
            };
            Ok(ProjectionStatus {
                lag: lag_of(events, Segment::WHOLE, record.position, head).await,
                kind,
                checkpoint: record.position,
                updated_at: record.updated_at,
                lease: holder.map(Lease::from),
                parked: parked_of(&name),
                segments: Vec::new(),
                name,
            })
        })
        .buffered(CONCURRENT_QUERIES)
        .collect::<Vec<Result<_, CliError>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for (name, count) in &splits {
        let owners = owners_of(stores, name).await?;
        let segments = (0..*count).filter_map(|index| Segment::new(index, *count));
        let segments: Vec<SegmentStatus> = stream::iter(segments)
            .map(|segment| {
                let checkpoint_name = segment.checkpoint_name(name);
                let checkpoint = by_name
                    .get(checkpoint_name.as_str())
                    .map_or(0, |r| r.position);
                let owner = owners.get(&segment.index());
                async move {
                    SegmentStatus {
                        segment: segment.to_string(),
                        lag: lag_of(events, segment, checkpoint, head).await,
                        checkpoint,
                        owner: owner.and_then(|o| o.owner.clone()),
                        epoch: owner.map_or(0, |o| o.epoch),
                        expired: owner.is_some_and(|o| o.expired),
                        parked: parked_of(&checkpoint_name),
                        checkpoint_name,
                    }
                }
            })
            .buffered(CONCURRENT_QUERIES)
            .collect()
            .await;
        projections.push(split_status(name, segments, &by_name));
    }
    projections.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Report {
        store: events.system_name(),
        head,
        projections,
        service: None,
    })
}

/// A split projection's row: its furthest-behind segment's checkpoint and lag, the
/// segments' parked events.
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
        lag: Lag {
            events: segments.iter().map(|s| s.lag.events).max().unwrap_or(0),
            oldest_age_seconds: oldest,
        },
        lease: None,
        parked: segments.iter().map(|s| s.parked).sum(),
        segments,
    }
}

/// The owners of `projection`'s segments, by index (none where the claims are not kept
/// across processes).
async fn owners_of(
    stores: &Stores,
    projection: &str,
) -> Result<HashMap<u32, SegmentOwner>, CliError> {
    let Some(claims) = &stores.claims else {
        return Ok(HashMap::new());
    };
    let owners = claims
        .owners(projection)
        .await
        .map_err(CliError::store(format!(
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
async fn lag_of(store: &dyn EventStore, segment: Segment, checkpoint: u64, head: u64) -> Lag {
    let behind = Lag {
        events: head.saturating_sub(checkpoint),
        oldest_age_seconds: None,
    };
    let Ok(batch) = store.read_segment(segment, checkpoint + 1, 1).await else {
        return behind;
    };
    match (batch.events().first(), batch.end()) {
        (Some(first), _) => Lag {
            events: head.max(first.position).saturating_sub(checkpoint),
            oldest_age_seconds: Some(seconds_since(first.timestamp)),
        },
        (None, BatchEnd::Unreadable(_)) => behind,
        (None, _) => Lag {
            events: 0,
            oldest_age_seconds: Some(0.0),
        },
    }
}

fn seconds_since(at: DateTime<Utc>) -> f64 {
    let age = Utc::now() - at;
    age.num_milliseconds() as f64 / 1000.0
}

fn as_text(report: &Report) -> String {
    let mut rows = Vec::new();
    for p in &report.projections {
        let holder = match (&p.lease, p.segments.len()) {
            (Some(lease), _) => lease.holder.clone(),
            (None, 0) => "-".to_owned(),
            (None, n) => format!("{n} segments"),
        };
        rows.push(row(&p.name, p.kind, p.checkpoint, p.lag, p.parked, holder));
        for s in &p.segments {
            let owner = match &s.owner {
                Some(owner) if s.expired => format!("{owner} (expired), epoch {}", s.epoch),
                Some(owner) => format!("{owner}, epoch {}", s.epoch),
                None => "-".to_owned(),
            };
            let name = format!("  {}", s.segment);
            rows.push(row(&name, "segment", s.checkpoint, s.lag, s.parked, owner));
        }
    }
    let headers = [
        "NAME",
        "KIND",
        "CHECKPOINT",
        "LAG",
        "OLDEST",
        "PARKED",
        "LEASE/OWNER",
    ];
    let mut text = format!("store {}, head {}\n", report.store, report.head);
    if rows.is_empty() {
        text.push_str("no checkpoints\n");
    } else {
        text.push('\n');
        text.push_str(&output::table(&headers, &rows));
    }
    text
}

fn row(name: &str, kind: &str, checkpoint: u64, lag: Lag, parked: u64, who: String) -> Vec<String> {
    let oldest = lag.oldest_age_seconds.map_or("?".to_owned(), output::age);
    vec![
        name.to_owned(),
        kind.to_owned(),
        checkpoint.to_string(),
        lag.events.to_string(),
        oldest,
        parked.to_string(),
        who,
    ]
}
