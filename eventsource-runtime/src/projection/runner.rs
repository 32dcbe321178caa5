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
//!    [batch](ProjectionRunner::batch_size) at a time;
//! 3. then **follows** new events ([`run`](ProjectionRunner::run) only): it reads again every
//!    [poll interval](ProjectionRunner::poll_interval), and at once when the store's
//!    [`appended_signal`](EventStore::appended_signal) says events were appended.
//!
//! # Delivery guarantees
//! - **In order**: events are handed over one at a time in global order (so each stream's
//!   in version order); the next one only after the previous one succeeded.
//! - **At least once**: the checkpoint is the position of the last event whose handler
//!   succeeded, and is saved after each batch (and before the runner stops, whatever the
//!   reason). A crash between a handler's success and that save delivers the events since
//!   the last save again, so handlers should be idempotent.
//! - **Nothing skipped**: a failing handler is retried with exponential backoff
//!   ([`backoff`](ProjectionRunner::backoff)); after
//!   [`max_attempts`](ProjectionRunner::max_attempts) failures on one event the runner stops
//!   with [`RunnerError::HandlerFailed`], its checkpoint just before that event. Events the
//!   projection does not [handle](Projection::handles) only move the checkpoint.
//! - **Stopping**: [`run`](ProjectionRunner::run)'s shutdown future lets the event being
//!   handled finish, then saves the checkpoint and releases the lease. Dropping a runner's
//!   future instead (a timeout, an aborted task) is safe too: the lease goes with it and the
//!   events handled since the last saved checkpoint come again next time.
//! - **Store trouble**: an unavailable event or checkpoint store
//!   ([`StoreError::Unavailable`]) is retried with the same backoff, without limit unless
//!   [`max_store_attempts`](ProjectionRunner::max_store_attempts) says otherwise; other
//!   store errors (a corrupt event) stop the runner with [`RunnerError::Store`].
//!
//! # Telemetry
//! Each handled event runs in the projection's span (when its tracing is on): a new root
//! **linked** to the span that appended the event, from the context stored in the event's
//! metadata, so the link survives restarts, with `eventsource.projection.lag_ms`. The
//! store's `read_all` spans (one per poll) are the store's: give the runner a store with
//! `enable_tracing(false)` to leave idle polls untraced. Retries and stops are logged as
//! `tracing` warnings and errors.
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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::sync::Mutex;

use super::checkpoint::{CheckpointStore, ProjectionLease};
use super::{Projection, ProjectionError, SharedProjection, handle_one};
use crate::event::EventEnvelope;
use crate::store::{AppendSignal, EventStore, StoreError};

/// Default [`ProjectionRunner::batch_size`].
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default [`ProjectionRunner::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Default [`ProjectionRunner::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default first delay of [`ProjectionRunner::backoff`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Default longest delay of [`ProjectionRunner::backoff`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Default [`ProjectionRunner::lease_retry_interval`].
pub const DEFAULT_LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Why a runner stopped before it was told to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The projection's handler failed on one event `attempts` times in a row. The
    /// checkpoint is just before that event: the next run starts with it.
    #[error(
        "projection `{projection}` stopped: its handler failed {attempts} times on the \
         `{event_type}` event at position {position}: {source}"
    )]
    HandlerFailed {
        /// The projection's name.
        projection: String,
        /// The failing event's global position.
        position: u64,
        /// The failing event's type.
        event_type: String,
        /// How many times the handler was called on it.
        attempts: u32,
        /// The last failure.
        #[source]
        source: ProjectionError,
    },
    /// The event store or the checkpoint store failed (not transiently, or more often than
    /// [`max_store_attempts`](ProjectionRunner::max_store_attempts) allows in a row).
    #[error("projection `{projection}` stopped: {operation} failed: {source}")]
    Store {
        /// The projection's name.
        projection: String,
        /// What the runner was doing: `read_all`, `load checkpoint`, `save checkpoint` or
        /// `acquire lease`.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// [`Projection::reset`] failed, so [`rebuild`](ProjectionRunner::rebuild) did not
    /// replay (the checkpoint is already 0: the next run replays everything on top of the
    /// uncleared model).
    #[error("projection `{projection}` could not be reset for a rebuild: {source}")]
    ResetFailed {
        /// The projection's name.
        projection: String,
        /// The projection's error.
        #[source]
        source: ProjectionError,
    },
}

/// Runs one projection over an event store from a persisted checkpoint: catch-up, then
/// live follow. See the [module documentation](self) for the guarantees.
///
/// The builder methods take and return the runner; the projection itself is shared
/// ([`projection`](Self::projection)) so its read model can be queried while it runs.
pub struct ProjectionRunner<P: Projection> {
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    projection: SharedProjection<P>,
    settings: Settings,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    batch_size: usize,
    poll_interval: Duration,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    lease_retry_interval: Duration,
    max_store_attempts: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            lease_retry_interval: DEFAULT_LEASE_RETRY_INTERVAL,
            max_store_attempts: None,
        }
    }
}

impl Settings {
    /// The delay after failed attempt `attempt` (1-based): doubling from the initial one,
    /// capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1_u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
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
    #[must_use]
    pub fn shared(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: SharedProjection<P>,
    ) -> Self {
        Self {
            store,
            checkpoints,
            projection,
            settings: Settings::default(),
        }
    }

    /// How many events one `read_all` asks for (default [`DEFAULT_BATCH_SIZE`]; at least
    /// 1). The checkpoint is saved after each batch.
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

    /// How many times in a row an operation on an unavailable event or checkpoint store
    /// is tried before the runner stops with [`RunnerError::Store`] (default: no limit, the
    /// runner waits for the store to come back; at least 1).
    #[must_use]
    pub fn max_store_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_store_attempts = Some(attempts.max(1));
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
    /// # Errors
    /// The checkpoint store's.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let name = self.name().await;
        self.checkpoints.load(&name).await
    }

    /// Runs until `shutdown` completes (returning `Ok`) or an error stops it: waits for
    /// the lease, catches up from the checkpoint, then follows new events.
    ///
    /// On shutdown the event being handled is finished (a handler is never interrupted;
    /// a backoff wait is), the checkpoint saved and the lease released.
    ///
    /// # Errors
    /// [`RunnerError::HandlerFailed`] after too many failures on one event,
    /// [`RunnerError::Store`] for a store that cannot be worked around.
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
        }
    }

    /// Waits for the lease, catches up from the checkpoint and returns the position
    /// reached (the new checkpoint), for tests and batch jobs. Caught up means a read
    /// returned less than a full batch.
    ///
    /// # Errors
    /// As [`run`](Self::run).
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
    /// [`RunnerError::ResetFailed`] when the reset fails, else as [`run`](Self::run).
    pub async fn rebuild(&self) -> Result<u64, RunnerError> {
        self.session_to_end(Mode::Rebuild).await
    }

    async fn session_to_end(&self, mode: Mode) -> Result<u64, RunnerError> {
        let mut shutdown = Shutdown::never();
        match self.session(mode, &mut shutdown).await {
            Ok(position) => Ok(position),
            Err(Halt::Failed(error)) => Err(error),
            Err(Halt::Shutdown) => unreachable!("no shutdown signal"),
        }
    }

    async fn name(&self) -> String {
        self.projection.lock().await.name().to_owned()
    }

    /// Lease, checkpoint, catch-up and (in `Follow` mode) live follow.
    async fn session(&self, mode: Mode, shutdown: &mut Shutdown<'_>) -> Result<u64, Halt> {
        let name = self.name().await;
        let lease = self.acquire(&name, shutdown).await?;
        let result = self.hold(&name, mode, shutdown).await;
        lease.release().await;
        result
    }

    /// The work done while holding the lease.
    async fn hold(&self, name: &str, mode: Mode, shutdown: &mut Shutdown<'_>) -> Result<u64, Halt> {
        if mode == Mode::Rebuild {
            self.retrying(name, "save checkpoint", shutdown, || {
                self.checkpoints.save(name, 0)
            })
            .await?;
            self.projection
                .lock()
                .await
                .reset()
                .await
                .map_err(|source| RunnerError::ResetFailed {
                    projection: name.to_owned(),
                    source,
                })?;
        }
        let mut position = self
            .retrying(name, "load checkpoint", shutdown, || {
                self.checkpoints.load(name)
            })
            .await?;
        let mut signal = match mode {
            Mode::Follow => self.store.appended_signal(),
            Mode::CatchUp | Mode::Rebuild => None,
        };
        loop {
            if let Some(signal) = &mut signal {
                // Seen: a later append wakes the wait below, even one made during the read.
                signal.borrow_and_update();
            }
            let from = position + 1;
            let batch = self
                .retrying(name, "read_all", shutdown, || {
                    self.store.read_all(from, self.settings.batch_size)
                })
                .await?;
            let checkpoint = position;
            let handled = self
                .handle_batch(name, &batch, &mut position, shutdown)
                .await;
            if position > checkpoint {
                // Saved whatever stopped the batch: the failing event stays the next one.
                self.retrying(name, "save checkpoint", shutdown, || {
                    self.checkpoints.save(name, position)
                })
                .await?;
            }
            handled?;
            if batch.len() >= self.settings.batch_size {
                continue;
            }
            // Caught up.
            if mode != Mode::Follow {
                return Ok(position);
            }
            self.wait_for_events(&mut signal, shutdown).await?;
        }
    }

    /// Waits for the lease; `Halt::Shutdown` if shutdown comes first.
    async fn acquire(
        &self,
        name: &str,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Box<dyn ProjectionLease>, Halt> {
        let mut waiting = false;
        loop {
            let lease = self
                .retrying(name, "acquire lease", shutdown, || {
                    self.checkpoints.try_acquire(name)
                })
                .await?;
            if let Some(lease) = lease {
                if waiting {
                    log_info(name, "lease acquired; taking over the projection");
                }
                return Ok(lease);
            }
            if !waiting {
                log_info(name, "another runner holds the projection; waiting for it");
                waiting = true;
            }
            shutdown
                .or(tokio::time::sleep(self.settings.lease_retry_interval))
                .await
                .ok_or(Halt::Shutdown)?;
        }
    }

    /// Hands the batch's events over in order, moving `position` past each success.
    async fn handle_batch(
        &self,
        name: &str,
        batch: &[EventEnvelope],
        position: &mut u64,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        for event in batch {
            if shutdown.requested() {
                return Err(Halt::Shutdown);
            }
            self.deliver(name, event, shutdown).await?;
            *position = event.position;
        }
        Ok(())
    }

    /// One event, retried with backoff until it succeeds or attempts run out.
    async fn deliver(
        &self,
        name: &str,
        event: &EventEnvelope,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let mut attempt = 1;
        loop {
            let result = {
                let mut projection = self.projection.lock().await;
                if !projection.handles(&event.event_type) {
                    return Ok(());
                }
                handle_one(&mut *projection, event).await
            };
            let Err(error) = result else {
                return Ok(());
            };
            if attempt >= self.settings.max_attempts {
                let error = RunnerError::HandlerFailed {
                    projection: name.to_owned(),
                    position: event.position,
                    event_type: event.event_type.clone(),
                    attempts: attempt,
                    source: error,
                };
                log_error(&error);
                return Err(error.into());
            }
            let delay = self.settings.backoff(attempt);
            log_retry(name, "handler", event.position, attempt, delay, &error);
            shutdown
                .or(tokio::time::sleep(delay))
                .await
                .ok_or(Halt::Shutdown)?;
            attempt += 1;
        }
    }

    /// A store operation, retried with backoff while the store is unavailable.
    ///
    /// The operation itself is never cut short by shutdown (a checkpoint save must land);
    /// the waits between attempts are.
    async fn retrying<T, Fut>(
        &self,
        name: &str,
        operation: &'static str,
        shutdown: &mut Shutdown<'_>,
        mut attempt_once: impl FnMut() -> Fut,
    ) -> Result<T, Halt>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 1;
        loop {
            let error = match attempt_once().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let transient = matches!(error, StoreError::Unavailable(_));
            let exhausted = self
                .settings
                .max_store_attempts
                .is_some_and(|max| attempt >= max);
            if !transient || exhausted || shutdown.requested() {
                let error = RunnerError::Store {
                    projection: name.to_owned(),
                    operation,
                    source: error,
                };
                log_error(&error);
                return Err(error.into());
            }
            let delay = self.settings.backoff(attempt);
            log_retry(name, operation, 0, attempt, delay, &error);
            shutdown
                .or(tokio::time::sleep(delay))
                .await
                .ok_or(Halt::Shutdown)?;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Caught up: waits for the poll interval, an append signal, or shutdown.
    async fn wait_for_events(
        &self,
        signal: &mut Option<AppendSignal>,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let interval = self.settings.poll_interval;
        let woken = shutdown
            .or(async {
                match signal.as_mut() {
                    None => {
                        tokio::time::sleep(interval).await;
                        true
                    }
                    Some(signal) => tokio::select! {
                        () = tokio::time::sleep(interval) => true,
                        changed = signal.changed() => changed.is_ok(),
                    },
                }
            })
            .await
            .ok_or(Halt::Shutdown)?;
        if !woken {
            // The store is gone or stopped signalling: poll only.
            *signal = None;
        }
        Ok(())
    }
}

/// The shutdown future of a [`ProjectionRunner::run`], polled at the runner's waits and
/// between events.
struct Shutdown<'a> {
    signal: Option<Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>>,
    fired: bool,
}

impl<'a> Shutdown<'a> {
    fn new(signal: Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>) -> Self {
        Self {
            signal: Some(signal),
            fired: false,
        }
    }

    fn never() -> Self {
        Self {
            signal: None,
            fired: false,
        }
    }

    /// Whether shutdown was requested, without waiting.
    fn requested(&mut self) -> bool {
        if !self.fired
            && let Some(signal) = &mut self.signal
        {
            let mut cx = Context::from_waker(Waker::noop());
            self.fired = signal.as_mut().poll(&mut cx).is_ready();
        }
        self.fired
    }

    /// `work`'s output, or `None` when shutdown comes first (`work` is then dropped).
    async fn or<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        if self.fired {
            return None;
        }
        let Some(signal) = &mut self.signal else {
            return Some(work.await);
        };
        tokio::select! {
            biased;
            () = signal.as_mut() => {
                self.fired = true;
                None
            }
            output = work => Some(output),
        }
    }
}

#[cfg(feature = "tracing")]
fn log_info(projection: &str, message: &'static str) {
    tracing::info!(target: crate::telemetry::spans::TARGET, projection, "{message}");
}

#[cfg(feature = "tracing")]
fn log_retry(
    projection: &str,
    operation: &str,
    position: u64,
    attempt: u32,
    delay: Duration,
    error: &dyn std::fmt::Display,
) {
    tracing::warn!(
        target: crate::telemetry::spans::TARGET,
        projection,
        operation,
        position,
        attempt,
        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        error = %error,
        "projection runner: attempt failed; retrying"
    );
}

#[cfg(feature = "tracing")]
fn log_error(error: &RunnerError) {
    tracing::error!(target: crate::telemetry::spans::TARGET, error = %error, "projection runner stopped");
}

#[cfg(not(feature = "tracing"))]
fn log_info(_: &str, _: &'static str) {}

#[cfg(not(feature = "tracing"))]
fn log_retry(_: &str, _: &str, _: u64, _: u32, _: Duration, _: &dyn std::fmt::Display) {}

#[cfg(not(feature = "tracing"))]
fn log_error(_: &RunnerError) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = Settings {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..Settings::default()
        };
        let delays: Vec<_> = (1..=5).map(|a| settings.backoff(a).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(settings.backoff(u32::MAX), Duration::from_millis(50));
    }
}
