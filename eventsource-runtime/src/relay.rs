//! The store as the outbox: a [`Relay`] publishes every stored event on a bus, at least
//! once, whichever process dies when.
//!
//! Publishing from the command's own process after the save ([`CommandService::with_bus`])
//! loses the message when that process dies in between, or when the broker is down at that
//! moment. A relay instead follows the store's global order ([`EventStore::read_all`]) from a
//! checkpoint, publishes each event with the bus's confirms, and advances the checkpoint only
//! after the bus confirmed: an event is published at least once, and again after a crash
//! between the confirm and the checkpoint (consumers deduplicate by message id, the event
//! id). It is a [`ProjectionRunner`] whose projection publishes, so it has the runner's
//! guarantees: one relay at a time per name (the checkpoint store's lease), in order, retries
//! with backoff (here without limit: a broker that is down is waited for), graceful shutdown.
//!
//! | publish with | when |
//! |---|---|
//! | [`CommandService::with_bus`] | in-process buses ([`InMemoryEventBus`](crate::bus::InMemoryEventBus)): handlers in the command's process, when it returns |
//! | a `Relay` | brokers: every stored event reaches other services, even if the command's process dies or the broker is down |
//!
//! Telemetry: each publish span is a child of the trace context stored with the event (the
//! append span of the command that stored it), so the consumers' spans, in other services,
//! continue the command's trace. The relay's lag (from the event's timestamp to its
//! publishing) is `cqrs.projection.lag` with `projection.name` = the relay's
//! [name](Relay::named) (default [`DEFAULT_NAME`]); the relay's own projection span is off
//! unless `telemetry::toggles::set_projection_tracing(Some(true))`. How far behind the relay
//! is (the events stored and not published yet, and the age of the oldest) comes from
//! [`lag`](Relay::lag) and [`health`](Relay::health), and as the `eventsource.lag.*` gauges
//! with `eventsource.component.kind` = `relay` (see [`health`](crate::health)).
//!
//! ```
//! use std::sync::Arc;
//!
//! use eventsource_runtime::bus::InMemoryEventBus;
//! use eventsource_runtime::prelude::*;
//! use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
//! use eventsource_runtime::relay::Relay;
//! # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! # pub struct Opened;
//! # #[derive(Default, Aggregate)]
//! # #[aggregate(type = "Account", events(Opened))]
//! # pub struct Account;
//! # impl Apply<Opened> for Account { fn apply(&mut self, _: &Opened) {} }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = InMemoryEventStore::new();
//! let bus = InMemoryEventBus::new(); // a broker's bus in production
//! let accounts = CommandService::<Account>::new(store.clone()); // no bus: the relay publishes
//! accounts.execute_with("a-1", |_| Ok::<_, std::convert::Infallible>(vec![Opened.into()])).await.unwrap();
//!
//! let relay = Relay::new(Arc::new(store), Arc::new(InMemoryCheckpointStore::new()), Arc::new(bus));
//! assert_eq!(relay.run_until_caught_up().await.unwrap(), 1, "published up to position 1");
//! # });
//! ```
//!
//! [`CommandService::with_bus`]: crate::command::CommandService::with_bus
//! [`EventStore::read_all`]: crate::store::EventStore::read_all

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bus::EventBus;
use crate::event::EventEnvelope;
use crate::health::{ComponentHealth, ComponentKind, Lag, ReportsHealth, Watchable};
use crate::projection::checkpoint::CheckpointStore;
use crate::projection::runner::{ProjectionRunner, RunnerError};
use crate::projection::segments::{Claim, SegmentClaims, SegmentStatus, SegmentedRunner};
use crate::projection::{BatchFailure, Projection, ProjectionError};
use crate::store::{EventStore, StoreError};

/// The name (checkpoint and lease key) of a relay unless told otherwise.
pub const DEFAULT_NAME: &str = "eventsource.relay";

/// Publishes every stored event on a bus, at least once; see the [module](self).
pub struct Relay {
    runner: ProjectionRunner<Forward>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("runner", &self.runner)
            .finish()
    }
}

/// The relay's projection: publishes each event, in its stored trace context.
struct Forward {
    name: String,
    bus: Arc<dyn EventBus>,
}

#[async_trait]
impl Projection for Forward {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.handle_batch(std::slice::from_ref(event))
            .await
            .map_err(|failure| failure.error)
    }

    /// As many as the runner reads: the bus keeps them in flight together.
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    async fn handle_batch(&mut self, events: &[EventEnvelope]) -> Result<(), BatchFailure> {
        match (*self.bus).publish_stored(events).await {
            Ok(_) => Ok(()),
            Err(failure) => {
                let handled = failure.published.message_ids.len();
                Err(BatchFailure::new(
                    handled,
                    ProjectionError::handler(failure.error),
                ))
            }
        }
    }
}

impl Relay {
    /// A relay from `store` to `bus`, keeping its checkpoint and lease in `checkpoints`
    /// under [`DEFAULT_NAME`]. It waits for an unavailable bus or store as long as it takes
    /// (backoff from 100 ms to 10 s).
    pub fn new(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        bus: Arc<dyn EventBus>,
    ) -> Self {
        let forward = Forward {
            name: DEFAULT_NAME.to_owned(),
            bus,
        };
        Self {
            runner: ProjectionRunner::new(store, checkpoints, forward)
                .max_attempts(u32::MAX)
                .reported_as(ComponentKind::Relay, DEFAULT_NAME.to_owned()),
        }
    }

    /// Builder: the relay's name, its checkpoint and lease key (one relay per name runs at
    /// a time; give each bus its own).
    ///
    /// # Panics
    /// When the relay is running (the name is read under the projection's lock).
    #[must_use]
    pub fn named(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.runner
            .projection()
            .try_lock()
            .expect("a relay is named before it runs")
            .name
            .clone_from(&name);
        Self {
            runner: self.runner.reported_as(ComponentKind::Relay, name),
        }
    }

    /// Builder: how many events one `read_all` asks for (default 256).
    #[must_use]
    pub fn batch_size(self, events: usize) -> Self {
        Self {
            runner: self.runner.batch_size(events),
        }
    }

    /// Builder: how long a caught-up relay waits before reading again when the store does
    /// not signal an append first (default 100 ms).
    #[must_use]
    pub fn poll_interval(self, interval: Duration) -> Self {
        Self {
            runner: self.runner.poll_interval(interval),
        }
    }

    /// Builder: the waits between attempts to publish while the bus fails (doubling from
    /// `initial` up to `max`).
    #[must_use]
    pub fn backoff(self, initial: Duration, max: Duration) -> Self {
        Self {
            runner: self.runner.backoff(initial, max),
        }
    }

    /// The global position of the last event the bus confirmed (0: none yet).
    ///
    /// # Errors
    /// The checkpoint store's.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        self.runner.checkpoint().await
    }

    /// How far behind the relay is: the events stored after its checkpoint and the age of
    /// the first of them (see [`ProjectionRunner::lag`]).
    ///
    /// # Errors
    /// The event store's or the checkpoint store's.
    pub async fn lag(&self) -> Result<Lag, StoreError> {
        self.runner.lag().await
    }

    /// The relay's health (kind `relay`): state, lease, lag, last error (see
    /// [`health`](crate::health)).
    pub async fn health(&self) -> ComponentHealth {
        self.runner.health().await
    }

    /// Publishes from the checkpoint on, then follows new events, until `shutdown`
    /// completes (the event being published is finished and confirmed first).
    ///
    /// # Errors
    /// [`RunnerError::Store`] for a store that cannot be worked around.
    pub async fn run<F>(&self, shutdown: F) -> Result<(), RunnerError>
    where
        F: Future + Send,
    {
        self.runner.run(shutdown).await
    }

    /// Publishes everything stored after the checkpoint and returns the position reached
    /// (for batch jobs and tests).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until_caught_up(&self) -> Result<u64, RunnerError> {
        self.runner.run_until_caught_up().await
    }
}

impl Relay {
    /// This relay as one worker of a relay split into `segments` segments, claimed in
    /// `claims` (see [`segments`](crate::projection::segments)): several relay processes
    /// publish the store together, each segment by one of them at a time. Every event of a
    /// stream is in one segment, so each aggregate's events are still published in version
    /// order; events of different segments are published side by side.
    #[must_use]
    pub fn segmented(self, claims: Arc<dyn SegmentClaims>, segments: u32) -> SegmentedRelay {
        SegmentedRelay {
            worker: self.runner.segmented(claims, segments),
        }
    }
}

/// One worker of a relay split into segments ([`Relay::segmented`]).
#[derive(Debug)]
pub struct SegmentedRelay {
    worker: SegmentedRunner<Forward>,
}

impl SegmentedRelay {
    /// As [`SegmentedRunner::claim_timeout`].
    #[must_use]
    pub fn claim_timeout(self, timeout: Duration) -> Self {
        Self {
            worker: self.worker.claim_timeout(timeout),
        }
    }

    /// As [`SegmentedRunner::rebalance_interval`].
    #[must_use]
    pub fn rebalance_interval(self, interval: Duration) -> Self {
        Self {
            worker: self.worker.rebalance_interval(interval),
        }
    }

    /// As [`SegmentedRunner::worker_name`].
    #[must_use]
    pub fn worker_name(self, name: impl Into<String>) -> Self {
        Self {
            worker: self.worker.worker_name(name),
        }
    }

    /// The claims this worker holds, as of its last rebalance.
    #[must_use]
    pub fn held(&self) -> Vec<Claim> {
        self.worker.held()
    }

    /// Every segment: who holds it, its epoch and checkpoint.
    ///
    /// # Errors
    /// The claims or checkpoint store's.
    pub async fn segments(&self) -> Result<Vec<SegmentStatus>, StoreError> {
        self.worker.segments().await
    }

    /// The worker's health and every segment's, as [`SegmentedRunner::health`].
    pub async fn health(&self) -> ComponentHealth {
        self.worker.health().await
    }

    /// Publishes its segments until every segment, whichever worker holds it, published
    /// what was stored when this was called, then stops as on shutdown and returns that
    /// position, as [`SegmentedRunner::run_until_caught_up`].
    ///
    /// # Errors
    /// As [`SegmentedRunner::run`].
    pub async fn run_until_caught_up(&self) -> Result<u64, RunnerError> {
        self.worker.run_until_caught_up().await
    }

    /// Completes once every segment published what was stored when this was called, as
    /// [`SegmentedRunner::caught_up`]: for [`run`](Self::run)'s shutdown beside a signal.
    pub async fn caught_up(&self) -> u64 {
        self.worker.caught_up().await
    }

    /// Publishes its segments until `shutdown` completes, as [`SegmentedRunner::run`].
    ///
    /// # Errors
    /// As [`SegmentedRunner::run`].
    pub async fn run<F>(&self, shutdown: F) -> Result<(), RunnerError>
    where
        F: Future + Send,
    {
        self.worker.run(shutdown).await
    }
}

impl Watchable for Relay {
    fn health_reporter(&self) -> Arc<dyn ReportsHealth> {
        self.runner.health_reporter()
    }
}

impl Watchable for SegmentedRelay {
    fn health_reporter(&self) -> Arc<dyn ReportsHealth> {
        self.worker.health_reporter()
    }
}
