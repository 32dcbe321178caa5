//! The projection runner: feeds one projection from an event store's global order, from a
//! persisted checkpoint, and keeps it up to date.
//!
//! A [`ProjectionRunner`]
//! 1. takes the projection's **lease** from the [`CheckpointStore`] (while another runner
//!    holds it, it waits and tries again every
//!    [`lease_retry_interval`](ProjectionRunner::lease_retry_interval): two runners never
//!    process one projection at once);
//! 2. loads the projection's **checkpoint** and **catches up** with
//!    [`read_all`](EventStore::read_all) from the position after it, a
//!    [batch](ProjectionRunner::batch_size) at a time: the next batch is read while the
//!    projection handles one (at most one batch ahead), so the database works while the
//!    projection does; while full batches follow one another they come from one
//!    [`read_all_batches`](EventStore::read_all_batches) reader (the PostgreSQL store
//!    streams them from one query, the SQLite store has the next page written while one is
//!    decoded), the same events in the same `read_all` spans;
//! 3. then **follows** new events ([`run`](ProjectionRunner::run) only): it reads again every
//!    [poll interval](ProjectionRunner::poll_interval), and at once when the store's
//!    [`appended_signal`](EventStore::appended_signal) says events were appended.
//!
//! # One runner at a time, even when a lease is lost
//! A lease can be lost while its runner lives on: a PostgreSQL lease is a lock of a
//! database session, which ends when the connection breaks or an administrator terminates
//! it, and another runner may then take the projection. A runner asks its lease
//! ([`is_held`](super::checkpoint::ProjectionLease::is_held), no I/O) before every handler
//! call and after every wait for events, and saves its checkpoint only as the lease's holder
//! ([`CheckpointStore::save_leased`]; on PostgreSQL through the lease's own session, so the
//! save fails once the lock is gone). When the lease is lost it stops handling events,
//! saves nothing, logs an error, counts `eventsource.projection.lease_lost`, and then:
//! [`run`](ProjectionRunner::run) goes back to waiting for the lease (after one
//! [`lease_retry_interval`](ProjectionRunner::lease_retry_interval), so that a runner
//! already waiting takes over first; it catches up from the checkpoint once it has the
//! lease again); the other runs return
//! [`RunnerError::LeaseLost`]. A handler already running when the lease is lost is not
//! interrupted: it finishes (keep handlers short), and the runner stops before the next.
//!
//! The lease learns of its loss from its connection: at once when the database ends the
//! session (a terminated backend, a restart); when the network goes silent, a PostgreSQL
//! lease gives itself up within `3/4` of its lease timeout
//! (`PostgresCheckpointStore::lease_timeout`), before the server frees the lock (within
//! `5/4` of it). Meanwhile another runner can take the lock, so a runner
//! that waited for the lease waits a
//! [`takeover_grace`](ProjectionRunner::takeover_grace) (250 ms by default) after taking
//! it before its first handler call: long enough for the old runner to learn of its loss
//! and finish the call it was in. An old runner whose process stalls longer than that, or
//! whose network went silent, can still overlap the new runner's first calls. The
//! checkpoint is fenced (the old runner's saves fail); a read model that must never see two
//! writers at once needs a fence of its own: run the projection
//! [split into segments](super::segments) (one segment will do), whose claims carry an
//! epoch, with its model written in the checkpoint's transaction on condition of the claim
//! (`postgres::FencedProjection` on PostgreSQL). To share the work
//! of one projection among several runners rather than keep standbys, split it too.
//!
//! # Unreadable events
//! An event the store cannot read back (a damaged row:
//! [`StoreError::Corrupt`], naming its position) never holds back the events before it:
//! [`read_all`](EventStore::read_all) returns them, and the runner handles them first. For
//! the unreadable event itself the runner follows its
//! [`on_unreadable`](ProjectionRunner::on_unreadable) policy:
//! - [`UnreadablePolicy::Stop`] (the default): it stops with
//!   [`RunnerError::UnreadableEvent`] (position and reason), its checkpoint just before the
//!   event, so nothing is skipped until someone repairs or removes the row;
//! - [`UnreadablePolicy::Park`]: it records the event's position and error in the
//!   checkpoint store's parked list ([`CheckpointStore::park`]), records an
//!   `eventsource.projection.park` span with status ERROR and the
//!   `eventsource.projection.events_parked` counter, logs an error, and goes on with the
//!   next event. [`parked`](ProjectionRunner::parked) lists the parked events and
//!   [`retry_parked`](ProjectionRunner::retry_parked) hands those that can now be read to
//!   the projection (late, out of order). A running runner that has caught up also retries,
//!   once per poll interval, those an operator asked it to
//!   ([`CheckpointStore::request_retry`], `eventsource parked retry`); a handler that keeps failing on one parks it again with
//!   the handler's error instead of stopping the runner.
//!
//! An event that cannot be brought up to its type's current schema version (see
//! [`upcast`](crate::event::upcast): the runner upcasts every event it reads with
//! [`Projection::upcasters`] before [`handles`](Projection::handles) and the handler see
//! it) is unreadable too, and follows the same policy: it stops with
//! [`RunnerError::UpcastFailed`] (the event id, its type, both versions and the reason), or
//! it is parked with that reason.
//!
//! # Delivery guarantees
//! - **In order**: events are handed over one at a time in global order (so each stream's
//!   in version order); the next one only after the previous one succeeded.
//! - **At least once**: the checkpoint is the position of the last event whose handler
//!   succeeded. It is saved after each batch by default
//!   ([`checkpoint_every`](ProjectionRunner::checkpoint_every) and
//!   [`checkpoint_interval`](ProjectionRunner::checkpoint_interval) save less often): a
//!   full batch's in the background, one save at a time, while the next batches are
//!   handled; a batch that was not full at once; and before the runner stops, whatever the
//!   reason (unless its lease is lost). A crash delivers the events since the last
//!   completed save again: fewer than
//!   [`max_unsaved_events`](ProjectionRunner::max_unsaved_events) (4096 by default, or
//!   `checkpoint_every` if larger) plus two batches. Handlers should be idempotent.
//! - **Nothing skipped**: a failing handler is retried with exponential backoff
//!   ([`backoff`](ProjectionRunner::backoff)); after
//!   [`max_attempts`](ProjectionRunner::max_attempts) failures on one event the runner stops
//!   with [`RunnerError::HandlerFailed`], its checkpoint just before that event. Events the
//!   projection does not [handle](Projection::handles) only move the checkpoint.
//! - **Splits**: the events an upcaster's [split](crate::event::upcast::Upcasters::split)
//!   makes of one stored event share its position; a runner stopped among them saves the
//!   position before it, so the next run hands the whole stored event over again.
//! - **Stopping**: [`run`](ProjectionRunner::run)'s shutdown future lets the event being
//!   handled finish, then saves the checkpoint and releases the lease. Dropping a runner's
//!   future instead (a timeout, an aborted task) is safe too: the lease goes with it and the
//!   events handled since the last saved checkpoint come again next time.
//! - **Store trouble**: an unavailable event or checkpoint store
//!   ([`StoreError::Unavailable`]) is retried with the same backoff, without limit unless
//!   [`max_store_attempts`](ProjectionRunner::max_store_attempts) says otherwise; an
//!   unreadable event follows the policy above; other store errors stop the runner with
//!   [`RunnerError::Store`].
//!
//! # Telemetry
//! Each handled event runs in the projection's span (when its tracing is on): a new root
//! **linked** to the span that appended the event, from the context stored in the event's
//! metadata, so the link survives restarts, with `eventsource.projection.lag_ms`. The
//! store's `read_all` spans (one per poll) are the store's: give the runner a store with
//! `enable_tracing(false)` to leave idle polls untraced. Retries and stops are logged as
//! `tracing` warnings and errors; a lost lease and a parked event are logged as errors and
//! counted (`eventsource.projection.lease_lost`, `eventsource.projection.events_parked`).
//! After each batch it reads, the runner records its lag, `eventsource.lag.events` and
//! `eventsource.lag.oldest_age` (the store's newest position asked again once a batch passes
//! the one last asked or that one is a second old, none on an idle poll); [`lag`](ProjectionRunner::lag) and [`health`](ProjectionRunner::health)
//! tell the same and more on demand (see [`health`](crate::health)).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use eventsource_runtime::event::NewEvent;
//! use eventsource_runtime::prelude::*;
//! use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
//! use eventsource_runtime::projection::runner::ProjectionRunner;
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
//! let checkpoints = InMemoryCheckpointStore::new();
//! let placed = || NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": 12 }));
//! let stream = StreamId::new("Order", "o-1");
//! store.append(&stream, ExpectedVersion::Any, vec![placed(), placed()]).await?;
//!
//! let runner = ProjectionRunner::new(
//!     Arc::new(store.clone()),
//!     Arc::new(checkpoints.clone()),
//!     EventCounter::default(),
//! )
//! .poll_interval(Duration::from_millis(50));
//! let counter = Arc::clone(runner.projection());
//!
//! // A batch job: catch up, then return the position reached.
//! assert_eq!(runner.run_until_caught_up().await?, 2);
//! assert_eq!(counter.lock().await.seen, 2);
//!
//! // A service: follow new events until told to stop.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(async move { runner.run(stopped).await });
//! store.append(&stream, ExpectedVersion::Any, vec![placed()]).await?;
//! while counter.lock().await.seen < 3 {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! stop.send(()).unwrap();
//! running.await.unwrap()?;
//! assert_eq!(checkpoints.load("EventCounter").await?, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod cadence;
mod claimed;
mod error;
mod health;
mod retry;
mod session;
mod settings;
mod shutdown;
mod stopped;
mod unreadable;

use std::sync::{Arc, OnceLock};

pub(in crate::projection) use health::{Probe, lag_after};
use std::time::Duration;

use tokio::sync::Mutex;

use super::checkpoint::{CheckpointStore, ParkedEvent};
use super::{Projection, SharedProjection, instrument};
use crate::event::upcast::reading_for;
use crate::health::{ComponentKind, ComponentState, LeaseState};
use crate::store::{EventStore, Segment, StoreError};
use settings::Settings;
use shutdown::Shutdown;

pub use error::RunnerError;
pub use settings::{
    DEFAULT_BATCH_SIZE, DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_INITIAL_BACKOFF, DEFAULT_LEASE_RETRY_INTERVAL, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BACKOFF, DEFAULT_MAX_UNSAVED_EVENTS, DEFAULT_POLL_INTERVAL, DEFAULT_TAKEOVER_GRACE,
};
pub use unreadable::UnreadablePolicy;

/// Runs one projection over an event store from a persisted checkpoint: catch-up, then
/// live follow. See the [module documentation](self) for the guarantees.
///
/// The builder methods take and return the runner; the projection itself is shared
/// ([`projection`](Self::projection)) so its read model can be queried while it runs.
pub struct ProjectionRunner<P: Projection> {
    pub(in crate::projection) store: Arc<dyn EventStore>,
    pub(in crate::projection) checkpoints: Arc<dyn CheckpointStore>,
    projection: SharedProjection<P>,
    /// The name, the stores again and the status, shared with health reporters.
    probe: Arc<Probe>,
    settings: Settings,
    /// The part of the log it reads: the whole log, or one segment of a
    /// [`SegmentedRunner`](crate::projection::segments::SegmentedRunner).
    segment: Segment,
}

impl<P: Projection> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &std::any::type_name::<P>())
            .field("store", &self.store.system_name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a session ends early.
enum Halt {
    /// The shutdown future completed.
    Shutdown,
    /// The lease was lost: stop handling, save nothing.
    LeaseLost,
    /// An error stopped the runner.
    Failed(RunnerError),
}

impl From<RunnerError> for Halt {
    fn from(error: RunnerError) -> Self {
        Self::Failed(error)
    }
}

/// What a session does once caught up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Follow new events until shutdown.
    Follow,
    /// Return the position reached.
    CatchUp,
    /// Reset the checkpoint and the model first, then catch up.
    Rebuild,
}

impl<P: Projection> ProjectionRunner<P> {
    /// A runner of `projection` over `store`, keeping its checkpoint and lease in
    /// `checkpoints`, with the default settings.
    pub fn new(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: P,
    ) -> Self {
        Self::shared(store, checkpoints, Arc::new(Mutex::new(projection)))
    }

    /// A runner of a projection that is already shared (with the code that queries it).
    ///
    /// The projection's [name](Projection::name) is read here, when the projection is not
    /// locked (else the first time the runner locks it), and kept: it must not change.
    #[must_use]
    pub fn shared(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: SharedProjection<P>,
    ) -> Self {
        let name = OnceLock::new();
        if let Ok(projection) = projection.try_lock() {
            let _ = name.set(projection.name().to_owned());
        }
        Self {
            probe: Self::probe(
                ComponentKind::Projection,
                name,
                Segment::WHOLE,
                &store,
                &checkpoints,
            ),
            store,
            checkpoints,
            projection,
            settings: Settings::default(),
            segment: Segment::WHOLE,
        }
    }

    fn probe(
        kind: ComponentKind,
        name: OnceLock<String>,
        segment: Segment,
        store: &Arc<dyn EventStore>,
        checkpoints: &Arc<dyn CheckpointStore>,
    ) -> Arc<Probe> {
        let type_name = std::any::type_name::<P>();
        let type_name = type_name.rsplit("::").next().unwrap_or(type_name);
        Arc::new(Probe::new(
            kind,
            name,
            type_name,
            segment,
            Arc::clone(store),
            Arc::clone(checkpoints),
        ))
    }

    /// What the runner's health reporters share with it.
    pub(in crate::projection) fn health_probe(&self) -> &Arc<Probe> {
        &self.probe
    }

    /// The name the runner reports (the projection's), read as [`name`](Self::name) does.
    pub(in crate::projection) async fn projection_name(&self) -> String {
        self.name().await
    }

    /// The runner as a `kind` named `name` (a relay's), before it is watched or run.
    pub(crate) fn reported_as(mut self, kind: ComponentKind, name: String) -> Self {
        let name = OnceLock::from(name);
        self.probe = Self::probe(kind, name, self.segment, &self.store, &self.checkpoints);
        self
    }

    /// How many events one `read_all` asks for (default [`DEFAULT_BATCH_SIZE`]; at least
    /// 1). The checkpoint is saved after each batch unless
    /// [`checkpoint_every`](Self::checkpoint_every) says otherwise.
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.settings.batch_size = events.max(1);
        self
    }

    /// How long a caught-up runner waits before reading again when the store does not
    /// signal an append first (default [`DEFAULT_POLL_INTERVAL`]).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval;
        self
    }

    /// How many times the handler is called on one event before the runner gives up
    /// with [`RunnerError::HandlerFailed`] (default [`DEFAULT_MAX_ATTEMPTS`]; at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts.max(1);
        self
    }

    /// The delays between attempts: `initial` after the first failure, doubling after each
    /// further one, never more than `max` (defaults [`DEFAULT_INITIAL_BACKOFF`],
    /// [`DEFAULT_MAX_BACKOFF`]). Also used between attempts at an unavailable store.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.initial_backoff = initial;
        self.settings.max_backoff = max.max(initial);
        self
    }

    /// How often a runner waiting for the projection's lease (held by another runner)
    /// tries again (default [`DEFAULT_LEASE_RETRY_INTERVAL`]).
    #[must_use]
    pub fn lease_retry_interval(mut self, interval: Duration) -> Self {
        self.settings.lease_retry_interval = interval;
        self
    }

    /// How long a runner that waited for the projection's lease waits after taking it,
    /// before it hands over its first event (default [`DEFAULT_TAKEOVER_GRACE`]): the
    /// runner it takes over from may have lost the lease a moment ago, and needs that long
    /// to learn of it and stop (see [One runner at a time](self#one-runner-at-a-time-even-when-a-lease-is-lost)).
    /// A runner that takes a free lease at once does not wait. `Duration::ZERO`: no wait.
    #[must_use]
    pub fn takeover_grace(mut self, grace: Duration) -> Self {
        self.settings.takeover_grace = grace;
        self
    }

    /// How many times in a row an operation on an unavailable event or checkpoint store
    /// is tried before the runner stops with [`RunnerError::Store`] (default: no limit, the
    /// runner waits for the store to come back; at least 1).
    #[must_use]
    pub fn max_store_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_store_attempts = Some(attempts.max(1));
        self
    }

    /// What to do with an event the store cannot read back (default
    /// [`UnreadablePolicy::Stop`]). See [Unreadable events](self#unreadable-events).
    #[must_use]
    pub fn on_unreadable(mut self, policy: UnreadablePolicy) -> Self {
        self.settings.on_unreadable = policy;
        self
    }

    /// The projection, to query its read model (lock it briefly: the runner waits for the
    /// lock to hand over each event).
    #[must_use]
    pub fn projection(&self) -> &SharedProjection<P> {
        &self.projection
    }

    /// The projection's saved checkpoint: the global position of the last event it handled
    /// (0: none yet).
    ///
    /// Does not lock the projection: it can be called while holding
    /// [`projection().lock()`](Self::projection).
    ///
    /// # Errors
    /// The checkpoint store's.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let name = self.name().await;
        self.checkpoints.load(&name).await
    }

    /// The events this projection parked ([`UnreadablePolicy::Park`]), by position.
    ///
    /// Does not lock the projection: it can be called while holding
    /// [`projection().lock()`](Self::projection).
    ///
    /// # Errors
    /// The checkpoint store's.
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        let name = self.name().await;
        self.checkpoints.parked(&name).await
    }

    /// Runs until `shutdown` completes (returning `Ok`) or an error stops it: waits for
    /// the lease, catches up from the checkpoint, then follows new events. When the lease
    /// is lost, waits for it again.
    ///
    /// On shutdown the event being handled is finished (a handler is never interrupted;
    /// a backoff wait is), the checkpoint saved and the lease released.
    ///
    /// # Errors
    /// [`RunnerError::HandlerFailed`] after too many failures on one event,
    /// [`RunnerError::UnreadableEvent`] for an unreadable event under
    /// [`UnreadablePolicy::Stop`], [`RunnerError::Store`] for a store that cannot be
    /// worked around.
    pub async fn run<F>(&self, shutdown: F) -> Result<(), RunnerError>
    where
        F: Future + Send,
    {
        let shutdown = std::pin::pin!(async move {
            shutdown.await;
        });
        let mut shutdown = Shutdown::new(shutdown);
        match self.session(Mode::Follow, &mut shutdown).await {
            Ok(_) | Err(Halt::Shutdown) => Ok(()),
            Err(Halt::Failed(error)) => Err(error),
            Err(Halt::LeaseLost) => unreachable!("a following session takes the lease again"),
        }
    }

    /// Waits for the lease, catches up from the checkpoint and returns the position
    /// reached (the new checkpoint), for tests and batch jobs. Caught up means a read
    /// returned no event, or less than a full batch that the next read confirmed.
    ///
    /// # Errors
    /// As [`run`](Self::run), and [`RunnerError::LeaseLost`] when the lease is lost.
    pub async fn run_until_caught_up(&self) -> Result<u64, RunnerError> {
        self.session_to_end(Mode::CatchUp).await
    }

    /// Rebuilds the projection from the start: waits for the lease, resets the checkpoint
    /// to 0, calls [`Projection::reset`], replays every event and returns the position
    /// reached. Follow on with [`run`](Self::run).
    ///
    /// The read model must be cleared first, or handlers will see every event again on
    /// top of it: by the projection's [`reset`](Projection::reset) (a no-op by default), or
    /// by its owner before calling this. Like every run, a rebuild waits for the lease:
    /// stop the projection's running runner first.
    ///
    /// # Errors
    /// [`RunnerError::ResetFailed`] when the reset fails, else as
    /// [`run_until_caught_up`](Self::run_until_caught_up).
    pub async fn rebuild(&self) -> Result<u64, RunnerError> {
        self.session_to_end(Mode::Rebuild).await
    }

    async fn session_to_end(&self, mode: Mode) -> Result<u64, RunnerError> {
        let mut shutdown = Shutdown::never();
        match self.session(mode, &mut shutdown).await {
            Ok(position) => Ok(position),
            Err(Halt::Failed(error)) => Err(error),
            Err(Halt::Shutdown | Halt::LeaseLost) => unreachable!("no shutdown signal"),
        }
    }

    /// The projection's name: kept since the runner was built, or read under the
    /// projection's lock the first time (a [`shared`](Self::shared) projection that was
    /// locked then).
    async fn name(&self) -> String {
        if let Some(name) = self.probe.name.get() {
            return name.clone();
        }
        let name = self.projection.lock().await.name().to_owned();
        self.probe.name.get_or_init(|| name).clone()
    }

    /// Lease, checkpoint, catch-up and (in `Follow` mode) live follow; after a lost lease,
    /// the lease again (`Follow`) or [`RunnerError::LeaseLost`].
    async fn session(&self, mode: Mode, shutdown: &mut Shutdown<'_>) -> Result<u64, Halt> {
        let upcasters = self.projection.lock().await.upcasters();
        let result = reading_for(upcasters, self.sessions(mode, shutdown)).await;
        let status = &self.probe.status;
        match &result {
            Ok(_) => status.set_with_lease(ComponentState::CaughtUp, LeaseState::NotHeld),
            Err(Halt::Shutdown) => {
                status.set_with_lease(ComponentState::Stopped, LeaseState::NotHeld);
            }
            Err(Halt::Failed(RunnerError::LeaseLost { .. })) => {}
            Err(Halt::Failed(error)) => {
                status.set_after(ComponentState::Failed, error);
                status.set_with_lease(ComponentState::Failed, LeaseState::NotHeld);
            }
            Err(Halt::LeaseLost) => {}
        }
        result
    }

    /// [`session`](Self::session)'s work, until it ends.
    async fn sessions(&self, mode: Mode, shutdown: &mut Shutdown<'_>) -> Result<u64, Halt> {
        let name = self.name().await;
        loop {
            let lease = self.acquire(&name, shutdown).await?;
            self.clear_stop(&name).await;
            let status = &self.probe.status;
            status.set_with_lease(ComponentState::CatchingUp, LeaseState::Held);
            let result = self.hold(&name, mode, &*lease, shutdown).await;
            if let Err(Halt::Failed(error)) = &result
                && !matches!(error, RunnerError::LeaseLost { .. })
            {
                // Recorded while the lease is held: no other runner has taken it since.
                self.record_stop(&name, error).await;
            }
            lease.release().await;
            status.set_with_lease(status.state(), LeaseState::NotHeld);
            if !matches!(result, Err(Halt::LeaseLost)) {
                return result;
            }
            instrument::lease_lost(&name);
            let lost = RunnerError::LeaseLost {
                projection: name.clone(),
            };
            status.set_after(ComponentState::LeaseLost, &lost);
            if mode != Mode::Follow {
                return Err(lost.into());
            }
            // A runner waiting for the lease gets the first chance to take it.
            shutdown
                .or(tokio::time::sleep(self.settings.lease_retry_interval))
                .await
                .ok_or(Halt::Shutdown)?;
        }
    }
}
