//! A runner's lag and health: measured on demand ([`ProjectionRunner::lag`],
//! [`ProjectionRunner::health`]) and, while it runs, recorded after each batch it reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::ProjectionRunner;
use crate::event::EventEnvelope;
use crate::health::{
    ComponentHealth, ComponentKind, ComponentState, Lag, LeaseState, ReportsHealth, Status,
    Watchable, instrument, late_mark_holder,
};
use crate::projection::Projection;
use crate::projection::checkpoint::CheckpointStore;
use crate::store::{EventStore, Segment, StoreError};

/// What a runner shares with its health reporters: its stores, its name and its status.
pub(in crate::projection) struct Probe {
    pub(in crate::projection) kind: ComponentKind,
    /// The projection's [name](Projection::name), read once (when the runner is built, or
    /// at the first lock of the projection if it was locked then), so that the runner's
    /// `checkpoint`, `parked`, `lag` and `health` do not wait for the projection's lock.
    pub(super) name: OnceLock<String>,
    /// The name reported before the projection's own is known: its type's.
    pub(super) type_name: &'static str,
    /// The part of the log the runner reads (its lag is that part's).
    segment: Segment,
    /// A segment's runner: the projection's name and the segment (`3/16`), as its lag
    /// gauges say them.
    segment_gauge: Option<(String, String)>,
    pub(in crate::projection) store: Arc<dyn EventStore>,
    pub(in crate::projection) checkpoints: Arc<dyn CheckpointStore>,
    pub(in crate::projection) status: Status,
    /// Whether the gauges last said "nothing waits" (an idle poll need not say it again).
    idle: AtomicBool,
    /// The store's newest position as last asked, and when: a runner catching up reads
    /// many batches below it, and asks again only once past it or once it is
    /// [`HEAD_MAX_AGE`] old (not one query per batch).
    head: Mutex<Option<(u64, Instant)>>,
}

/// The lag of `segment` of the log (the whole log: [`Segment::WHOLE`]) handled up to
/// `checkpoint`: when one of its events waits, the store's newest position (`head`, or asked
/// now) minus the checkpoint, and the age of that event; [`Lag::ZERO`] when none waits.
pub(in crate::projection) async fn lag_after(
    store: &dyn EventStore,
    segment: Segment,
    checkpoint: u64,
    head: Option<u64>,
) -> Result<Lag, StoreError> {
    // The whole log's "segment" is read as the whole log (`read_segment`'s rule).
    let next = store.read_segment(segment, checkpoint + 1, 1).await?;
    let Some(first) = next.first() else {
        return Ok(Lag::ZERO);
    };
    let head = match head {
        Some(head) => head,
        None => store.head_position().await?.unwrap_or(first.position),
    };
    Ok(Lag::since(
        head.max(first.position).saturating_sub(checkpoint),
        first.timestamp,
    ))
}

/// How long the store's newest position, once asked, stands for the lag of the batches
/// read below it.
const HEAD_MAX_AGE: Duration = Duration::from_secs(1);

impl Probe {
    pub(super) fn new(
        kind: ComponentKind,
        name: OnceLock<String>,
        type_name: &'static str,
        segment: Segment,
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Self {
        let segment_gauge = (!segment.is_whole())
            .then(|| {
                let suffix = format!("[{segment}]");
                let projection = name.get()?.strip_suffix(&suffix)?;
                Some((projection.to_owned(), segment.to_string()))
            })
            .flatten();
        Self {
            kind,
            name,
            type_name,
            segment,
            segment_gauge,
            store,
            checkpoints,
            status: Status::new(LeaseState::NotHeld),
            idle: AtomicBool::new(false),
            head: Mutex::new(None),
        }
    }

    /// The projection's name, or its type's before the projection's is known.
    pub(in crate::projection) fn reported_name(&self) -> &str {
        self.name.get().map_or(self.type_name, String::as_str)
    }

    /// The lag from the saved checkpoint: the newest position minus it, and the age of the
    /// first event after it.
    pub(super) async fn lag(&self) -> Result<Lag, StoreError> {
        let checkpoint = self.checkpoints.load(self.reported_name()).await?;
        lag_after(&*self.store, self.segment, checkpoint, None).await
    }

    /// The health now: the running loop's state, the lag, parked events and a late holder
    /// of the store's high-water mark asked now.
    pub(super) async fn health(&self) -> ComponentHealth {
        let now = self.status.now();
        let name = self.reported_name();
        let mut health = ComponentHealth::new(self.kind, name, now.state, now.lease);
        health.last_error = now.last_error;
        health.lag = self.lag().await.ok();
        health.parked = self
            .checkpoints
            .parked(name)
            .await
            .map_or(0, |parked| parked.len() as u64);
        health.mark_holder = late_mark_holder(&*self.store, self.kind, name).await;
        health
    }

    /// After a read from `checkpoint` returned `batch`: the state (`following` once a
    /// follower read less than a full batch) and the gauges (when there are events, the
    /// store's newest position: asked again once the batch passes the one last asked, or
    /// that one is a second old). The newest position, when known.
    pub(super) async fn after_read(
        &self,
        checkpoint: u64,
        batch: &[EventEnvelope],
        following: bool,
    ) -> Option<u64> {
        self.status.set(if following {
            ComponentState::Following
        } else {
            ComponentState::CatchingUp
        });
        let Some(first) = batch.first() else {
            self.idle_now();
            return None;
        };
        self.idle.store(false, Ordering::Relaxed);
        let last = batch.last().map_or(0, |last| last.position);
        let head = match self.known_head(last) {
            Some(head) => Some(head),
            None => self.ask_head().await,
        };
        let read = last.saturating_sub(checkpoint);
        let events = head.map_or(read, |head| head.saturating_sub(checkpoint).max(read));
        self.record_lag(Lag::since(events, first.timestamp));
        head
    }

    /// The newest position last asked, if it is at or past `last` and recent enough.
    fn known_head(&self, last: u64) -> Option<u64> {
        let known = *self.head.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .filter(|&(head, asked)| head >= last && asked.elapsed() < HEAD_MAX_AGE)
            .map(|(head, _)| head)
    }

    /// The store's newest position, asked now (one query), and kept.
    async fn ask_head(&self) -> Option<u64> {
        let asked = Instant::now();
        let head = self.store.head_position().await.ok().flatten();
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = head.map(|head| (head, asked));
        head
    }

    /// After a batch was handled up to `position`: nothing waits if that reached `head`
    /// (the newest position when the batch was read), or, for a segment, if the batch was
    /// the last of its events then (a follower's partial batch: the segment's last event is
    /// rarely the log's); else the next read says how much.
    pub(super) fn after_batch(&self, position: u64, head: Option<u64>, following: bool) {
        if following {
            self.status.set(ComponentState::Following);
        }
        let segment_done = following && !self.segment.is_whole();
        if segment_done || head.is_some_and(|head| position >= head) {
            self.idle_now();
        }
    }

    /// The lag gauges: the runner's, or its segment's.
    fn record_lag(&self, lag: Lag) {
        match &self.segment_gauge {
            Some((projection, segment)) => {
                instrument::record_lag(self.kind, projection, Some(segment), lag);
            }
            None => instrument::record_lag(self.kind, self.reported_name(), None, lag),
        }
    }

    /// Nothing waits: the gauges say so once.
    fn idle_now(&self) {
        if !self.idle.swap(true, Ordering::Relaxed) {
            self.record_lag(Lag::ZERO);
        }
    }
}

#[async_trait]
impl ReportsHealth for Probe {
    async fn health(&self) -> ComponentHealth {
        Probe::health(self).await
    }
}

impl<P: Projection> Watchable for ProjectionRunner<P> {
    fn health_reporter(&self) -> Arc<dyn ReportsHealth> {
        self.probe.clone()
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// How far behind the projection is: the events stored after its saved checkpoint
    /// (the store's newest position minus the checkpoint) and the age of the first of them
    /// (now minus the time it was recorded); [`Lag::ZERO`] when caught up. Two or three
    /// cheap queries; does not lock the projection.
    ///
    /// # Errors
    /// The event store's or the checkpoint store's.
    pub async fn lag(&self) -> Result<Lag, StoreError> {
        self.name().await;
        self.probe.lag().await
    }

    /// The runner's health: its state (as its running loop last set it), its lease, its
    /// lag and parked events (asked now), and its last error. See
    /// [`health`](crate::health) for a report of several components.
    pub async fn health(&self) -> ComponentHealth {
        self.name().await;
        self.probe.health().await
    }
}
