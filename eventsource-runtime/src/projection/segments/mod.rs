//! One projection over many workers: the log split into segments
//! ([`Segment`]s, by a hash of each event's stream), each segment
//! claimed by one worker at a time, its checkpoint saved only under its claim.
//!
//! A [`SegmentedRunner`] (from [`ProjectionRunner::segmented`]) is one **worker**. Start
//! one in each process (or several in one); together they hand every segment to exactly
//! one of them:
//! - **Fair shares.** Every [`rebalance_interval`](SegmentedRunner::rebalance_interval) a
//!   worker says it is alive, renews its claims, and counts the live workers: it claims
//!   free segments up to its share (`ceil(segments / workers)`), and gives up those above
//!   it when a worker joined (after its runner saved the segment's checkpoint), for the
//!   newcomer to take.
//! - **Takeover.** A worker that stops renewing (killed, stalled, cut from the database)
//!   loses its segments after the [`claim_timeout`](SegmentedRunner::claim_timeout): the
//!   others take them over, each at a new **epoch**. A graceful stop releases them at once.
//! - **Fencing.** Each claim carries its epoch. A segment's checkpoint is saved only if the
//!   worker still holds the segment at that epoch (on PostgreSQL in one statement with the
//!   check): a worker that stalled past its timeout and wakes up cannot move the checkpoint
//!   of the worker that took over. A worker stops handling a segment on its own once its
//!   last renewal is older than nine tenths of the timeout (the claim *lapses*), before the
//!   others may take it over.
//! - **Losses, told once.** How a claim was lost is counted
//!   (`eventsource.projection.segment.changes`) and logged by what its worker saw:
//!   - its renewals were failing when the claim lapsed (the claims store did not answer:
//!     the worker lost the database): `change` = `lost`, as soon as it lapses;
//!   - they were not (the worker did not run in time: a stall, swapping, a paused
//!     container): its first renewal after the lapse asks the store. The store still has the
//!     claim at its epoch (no other worker took it): the segment is resumed at once. It does
//!     not: `fenced`, logged with the worker holding the segment now; the stalled worker
//!     claims again as a newcomer;
//!   - a checkpoint save or a fenced read model's write refused under an old epoch:
//!     `fenced`.
//!
//!   A claim lost while the database was out of reach and still the worker's when it
//!   answers again is resumed too (counted `claimed`).
//!
//! # What each kind of projection gets
//! - Each stream's events are handled in version order, by one worker at a time per
//!   segment, at least once (as with [`ProjectionRunner`]: after a takeover the events
//!   since the last saved checkpoint of the segment come again).
//! - The checkpoint is fenced. A read model written in the **same transaction** as the
//!   checkpoint, conditional on the claim
//!   (`postgres::FencedProjection` on PostgreSQL), never takes
//!   a write from a stale worker, however long it stalled. A read model written
//!   elsewhere (another database, a call to another service) can still take the one write
//!   a stalled worker had in flight when it stalled: make that write idempotent, or
//!   conditional on [`Fence::current`].
//!
//! # Choosing the count
//! The count is recorded by the first worker; a worker given another one stops with
//! [`RunnerError::SegmentCountChanged`](super::runner::RunnerError::SegmentCountChanged).
//! To change it, rebuild the projection under a new
//! name (its read model beside the old one), then switch readers over; or, to a multiple
//! of the count while no worker runs, split it again ([`SegmentClaims::resplit`]: each new
//! segment starts from the checkpoint of the old one holding its streams). A projection that
//! ran whole ([`ProjectionRunner`]) and is split for the first time starts every segment
//! from its checkpoint: nothing is handled twice.
//!
//! Claims live in a [`SegmentClaims`] store: the PostgreSQL checkpoint store across
//! processes (tables `projection_segments` and `projection_workers`), an
//! [`InMemorySegmentClaims`] within one process (the in-memory and SQLite stores: several
//! workers, or one worker with many segments, in one process).
//!
//! ```
//! use std::sync::Arc;
//!
//! use eventsource_runtime::event::NewEvent;
//! use eventsource_runtime::prelude::*;
//! use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
//! use eventsource_runtime::projection::runner::ProjectionRunner;
//! use eventsource_runtime::projection::segments::InMemorySegmentClaims;
//!
//! #[derive(Default)]
//! struct EventCounter { seen: u64 }
//!
//! #[eventsource_runtime::async_trait]
//! impl Projection for EventCounter {
//!     fn name(&self) -> &str { "EventCounter" }
//!     async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
//!         self.seen += 1;
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = InMemoryEventStore::new();
//! for n in 0..10 {
//!     let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": n }));
//!     let stream = StreamId::new("Order", format!("o-{n}"));
//!     store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await?;
//! }
//! let worker = ProjectionRunner::new(
//!     Arc::new(store),
//!     Arc::new(InMemoryCheckpointStore::new()),
//!     EventCounter::default(),
//! )
//! .segmented(Arc::new(InMemorySegmentClaims::new()), 4);
//! let counter = Arc::clone(worker.projection());
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(async move { worker.run(stopped).await });
//! while counter.lock().await.seen < 10 {
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! }
//! stop.send(()).unwrap();
//! running.await.unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod caught_up;
mod claims;
mod health;
mod instrument;
mod lease;
mod rebalance;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use claims::{
    Claim, Claimed, InMemorySegmentClaims, Resplit, Retire, SegmentClaims, SegmentOwner,
};
pub use lease::Fence;

use super::runner::ProjectionRunner;
use super::{Projection, SharedProjection};
use crate::health::{ComponentHealth, LeaseState, ReportsHealth, Status, Watchable};
use crate::store::{Segment, StoreError};
use health::WorkerProbe;

/// Default [`SegmentedRunner::claim_timeout`].
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker of a projection split into segments. See the [module documentation](self).
pub struct SegmentedRunner<P: Projection> {
    template: ProjectionRunner<P>,
    claims: Arc<dyn SegmentClaims>,
    count: u32,
    worker: String,
    claim_timeout: Duration,
    rebalance_interval: Option<Duration>,
    /// Its state and the segments it runs, shared with its health reporters.
    probe: Arc<WorkerProbe>,
}

impl<P: Projection> std::fmt::Debug for SegmentedRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedRunner")
            .field("runner", &self.template)
            .field("segments", &self.count)
            .field("worker", &self.worker)
            .field("claim_timeout", &self.claim_timeout)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// This runner as one worker of the projection split into `segments` segments (1 to
    /// [`Segment::MAX_COUNT`]), claimed in `claims`: see [`segments`](super::segments). Each
    /// segment it claims runs with this runner's settings (batch size, retries, unreadable
    /// events), its checkpoint and parked events under the segment's name
    /// ([`Segment::checkpoint_name`]).
    #[must_use]
    pub fn segmented(self, claims: Arc<dyn SegmentClaims>, segments: u32) -> SegmentedRunner<P> {
        let probe = Arc::new(WorkerProbe {
            runner: Arc::clone(self.health_probe()),
            claims: Arc::clone(&claims),
            status: Status::new(LeaseState::NotHeld),
            held: Mutex::default(),
        });
        SegmentedRunner {
            template: self,
            claims,
            count: segments.clamp(1, Segment::MAX_COUNT),
            worker: default_worker_name(),
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            rebalance_interval: None,
            probe,
        }
    }
}

/// `{host}-{pid}-{random}`: unique among the workers, and says where each runs.
fn default_worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// A segment as seen from every worker: who holds it, at which epoch, and its saved
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentStatus {
    /// The segment.
    pub segment: Segment,
    /// The worker holding it (`None`: free).
    pub owner: Option<String>,
    /// The epoch of its current claim.
    pub epoch: u64,
    /// Whether its owner's claim expired: not renewed within the claim timeout it was made
    /// with (another worker may take it over).
    pub expired: bool,
    /// The last position of the log it saved as handled.
    pub checkpoint: u64,
}

impl<P: Projection> SegmentedRunner<P> {
    /// How long a worker may go without renewing its claims before the others take its
    /// segments over (default [`DEFAULT_CLAIM_TIMEOUT`]). Shorter: a dead worker's segments
    /// wait less, and each worker writes more often (one renewal and one heartbeat per
    /// [`rebalance_interval`](Self::rebalance_interval), a third of this by default). A
    /// worker whose renewals are late by more than this (a long pause: swapping, a stopped
    /// container) loses its segments although it lives, when another worker took them over
    /// meanwhile (counted `fenced`; it resumes those nobody took): keep it well above such
    /// pauses. Each claim records the timeout it was made with, and expires by it, whoever
    /// asks (the other workers, [`segments`](Self::segments), the health report).
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// How often the worker renews its claims and rebalances (default: a third of the
    /// [`claim_timeout`](Self::claim_timeout); at most that third).
    #[must_use]
    pub fn rebalance_interval(mut self, interval: Duration) -> Self {
        self.rebalance_interval = Some(interval);
        self
    }

    /// The worker's name in the claims store (default `{HOSTNAME}-{pid}-{random}`): unique
    /// among the projection's workers.
    #[must_use]
    pub fn worker_name(mut self, name: impl Into<String>) -> Self {
        self.worker = name.into();
        self
    }

    /// The worker's name.
    #[must_use]
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// How many segments the projection is split into.
    #[must_use]
    pub fn segment_count(&self) -> u32 {
        self.count
    }

    /// The projection, as [`ProjectionRunner::projection`].
    #[must_use]
    pub fn projection(&self) -> &SharedProjection<P> {
        self.template.projection()
    }

    /// The claims this worker holds, as of its last rebalance.
    #[must_use]
    pub fn held(&self) -> Vec<Claim> {
        self.probe
            .held()
            .into_iter()
            .map(|segment| segment.claim)
            .collect()
    }

    /// The worker's health: its state (catching up while one of its segments is; waiting
    /// for the lease while it holds none), whether it holds segments, the projection's lag
    /// (its furthest-behind segment's) and parked events, and every segment of the
    /// projection (who holds it, its epoch, checkpoint, lag and parked events), asked now:
    /// a few queries per segment. [`HealthRegistry::watch`](crate::health::HealthRegistry::watch)
    /// takes the worker as it takes a runner.
    pub async fn health(&self) -> ComponentHealth {
        self.template.projection_name().await;
        self.probe.health().await
    }

    /// Every segment of the projection, from the claims store and the checkpoints: who holds
    /// it, at which epoch, and how far it got (none before the first worker split it).
    ///
    /// # Errors
    /// The claims or checkpoint store's.
    pub async fn segments(&self) -> Result<Vec<SegmentStatus>, StoreError> {
        let name = self.template.projection_name().await;
        let mut statuses = Vec::new();
        for owner in self.claims.owners(&name).await? {
            let checkpoint_name = owner.segment.checkpoint_name(&name);
            statuses.push(SegmentStatus {
                segment: owner.segment,
                checkpoint: self.template.checkpoints.load(&checkpoint_name).await?,
                owner: owner.owner,
                epoch: owner.epoch,
                expired: owner.expired,
            });
        }
        Ok(statuses)
    }

    fn interval(&self) -> Duration {
        let third = self.claim_timeout / 3;
        self.rebalance_interval
            .map_or(third, |interval| interval.min(third))
            .max(Duration::from_millis(10))
    }
}

impl<P: Projection> Watchable for SegmentedRunner<P> {
    fn health_reporter(&self) -> Arc<dyn ReportsHealth> {
        self.probe.clone()
    }
}
