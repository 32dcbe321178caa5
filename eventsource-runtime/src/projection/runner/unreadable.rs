//! Events the store cannot read back: how a runner reads around them, stops at them or
//! parks them, and retries parked ones.

use super::retry::log_stopped;
use super::shutdown::Shutdown;
use super::{Halt, ProjectionRunner, RunnerError};
use crate::event::upcast::UpcastCounts;
use crate::event::upcast::{UpcastError, Upcasted, Upcasters};
use crate::event::{DecodeError, EventEnvelope, StreamId};
use crate::projection::checkpoint::{ParkedEvent, ProjectionLease};
use crate::projection::{Projection, ProjectionError, instrument};
use crate::store::StoreError;
use crate::telemetry::otel::log::{log_error, log_info, log_warn};
use crate::telemetry::values::Chain;

/// What a [`ProjectionRunner`] does with an event it cannot read: one the store cannot
/// read back (a damaged row, [`StoreError::Corrupt`]), one its upcasters cannot bring up to
/// date, or one its handler cannot decode ([`ProjectionError::Decode`]: a payload that does
/// not fit its type, a schema version newer than this code knows, as in a rolling deploy).
/// The events before it are handled either way.
///
/// ```
/// use eventsource_runtime::projection::runner::UnreadablePolicy;
///
/// assert_eq!(UnreadablePolicy::default(), UnreadablePolicy::Stop);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnreadablePolicy {
    /// Stop with [`RunnerError::UnreadableEvent`] (its position and the reason), the
    /// checkpoint just before the event: nothing is skipped, and the next run stops there
    /// again until the row is repaired or removed.
    #[default]
    Stop,
    /// Keep the event's position and error in the checkpoint store's parked list
    /// ([`CheckpointStore::park`](crate::projection::checkpoint::CheckpointStore::park)),
    /// record an ERROR span and a counter, and go on with the next event. See
    /// [`ProjectionRunner::parked`] and [`ProjectionRunner::retry_parked`]. An event its
    /// handler cannot decode is parked at its first failure (no retry changes what this
    /// code can read); retried once newer code is deployed, it is handled.
    Park,
}

/// What a read gave the runner.
pub(super) enum Read {
    /// Events to hand over, in order (maybe none), upcast: the events a split made share
    /// their stored event's position.
    Events(Vec<EventEnvelope>),
    /// The first event at or after the position asked for is unreadable.
    Unreadable { position: u64, error: Unreadable },
}

/// Why a stored event cannot be handed over.
pub(super) enum Unreadable {
    /// The store cannot read it back ([`StoreError::Corrupt`]).
    Row(StoreError),
    /// It cannot be brought up to date.
    Upcast {
        /// Its stream and version there.
        stream: StreamId,
        version: u64,
        error: UpcastError,
    },
    /// Its handler cannot decode it.
    Undecodable {
        /// Its stream and version there.
        stream: StreamId,
        version: u64,
        /// Its stored type name.
        event_type: String,
        error: DecodeError,
    },
}

impl Unreadable {
    /// The runner's error when it stops at the event at `position`.
    fn stop(self, projection: &str, position: u64) -> RunnerError {
        let projection = projection.to_owned();
        match self {
            Self::Row(source) => RunnerError::UnreadableEvent {
                projection,
                position,
                source,
            },
            Self::Upcast { error, .. } => RunnerError::UpcastFailed {
                projection,
                position,
                source: Box::new(error),
            },
            Self::Undecodable {
                event_type, error, ..
            } => RunnerError::HandlerFailed {
                projection,
                position,
                event_type,
                attempts: 1,
                source: ProjectionError::Decode(error),
            },
        }
    }

    /// The whole reason, for the parked list and the log.
    fn reason(&self) -> String {
        match self {
            Self::Row(error) => Chain(error).to_string(),
            Self::Upcast { error, .. } => Chain(error).to_string(),
            Self::Undecodable { error, .. } => Chain(error).to_string(),
        }
    }
}

/// `batch` upcast by `upcasters`, up to the first event that cannot be: when that is the
/// first, it is what the read gives.
pub(super) fn upcast_batch(upcasters: &Upcasters, batch: Vec<EventEnvelope>) -> Read {
    if upcasters.is_empty() {
        return Read::Events(batch);
    }
    let mut events = Vec::with_capacity(batch.len());
    let mut counts = UpcastCounts::default();
    for event in batch {
        let made = match upcasters.upcast_counted(&event, &mut counts) {
            Ok(Upcasted::Unchanged(_)) => None,
            Ok(Upcasted::Changed { events, .. }) => Some(events),
            Err(error) if events.is_empty() => {
                return Read::Unreadable {
                    position: event.position,
                    error: Unreadable::Upcast {
                        stream: event.stream,
                        version: event.version,
                        error,
                    },
                };
            }
            // The events before it are handed over first; the next read starts at it.
            Err(_) => break,
        };
        match made {
            None => events.push(event),
            Some(made) => events.extend(made),
        }
    }
    Read::Events(events)
}

/// The position an unreadable-event error names, if it is one.
fn unreadable_at(error: &StoreError) -> Option<u64> {
    match error {
        StoreError::Corrupt { position, .. } => Some(*position),
        _ => None,
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Reads up to `limit` events from `from`, retried while the store is unavailable;
    /// an unreadable event comes back as `Err` for the caller to deal with.
    async fn read_some(
        &self,
        name: &str,
        from: u64,
        limit: usize,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Result<Vec<EventEnvelope>, StoreError>, Halt> {
        self.reading(name, "read_all", shutdown, || async move {
            match (*self.store).read_segment(self.segment, from, limit).await {
                Err(error) if unreadable_at(&error).is_some() => Ok(Err(error)),
                read => read.map(|batch| Ok(batch.into_events())),
            }
        })
        .await
    }

    /// The next batch from `from`, upcast, or the unreadable event that comes first.
    pub(super) async fn read(
        &self,
        name: &str,
        from: u64,
        upcasters: &Upcasters,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Read, Halt> {
        let limit = self.settings.batch_size;
        let error = match self.read_some(name, from, limit, shutdown).await? {
            Ok(batch) => return Ok(upcast_batch(upcasters, batch)),
            Err(error) => error,
        };
        // The stores of this crate fail a read only when its first event is unreadable; a
        // store that fails a whole batch instead is read one event at a time up to it.
        let error = match (limit, unreadable_at(&error)) {
            (1, _) | (_, Some(0)) => error,
            (_, Some(at)) if at == from => error,
            _ => match self.read_some(name, from, 1, shutdown).await? {
                Ok(batch) => return Ok(upcast_batch(upcasters, batch)),
                Err(error) => error,
            },
        };
        match unreadable_at(&error) {
            Some(position) if position >= from => Ok(Read::Unreadable {
                position,
                error: Unreadable::Row(error),
            }),
            // Where it is cannot be told: stop, whatever the policy.
            _ => Err(self.stop_at(name, from, Unreadable::Row(error))),
        }
    }

    /// Stops at the unreadable event at `position`, or parks it, as the policy says: the
    /// reason it was parked with.
    pub(super) async fn unreadable(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        position: u64,
        error: Unreadable,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<String, Halt> {
        if self.settings.on_unreadable == UnreadablePolicy::Stop {
            return Err(self.stop_at(name, position, error));
        }
        if !lease.is_held() {
            return Err(Halt::LeaseLost);
        }
        let reason = error.reason();
        log_error!(
            projection = name,
            position,
            error = %reason,
            "projection runner parked an unreadable event and goes on with the next one"
        );
        let span = match &error {
            Unreadable::Row(error) => instrument::parking(name, position, error),
            Unreadable::Upcast {
                stream,
                version,
                error,
            } => instrument::parking_upcast(name, position, stream, *version, error),
            Unreadable::Undecodable {
                stream,
                version,
                event_type,
                error,
            } => {
                instrument::parking_undecodable(name, position, stream, *version, event_type, error)
            }
        };
        let parked = ParkedEvent::new(position, reason);
        span.run(self.retrying(name, "park event", shutdown, || {
            self.checkpoints.park(name, &parked)
        }))
        .await?;
        Ok(parked.error)
    }

    fn stop_at(&self, name: &str, position: u64, error: Unreadable) -> Halt {
        let span = match &error {
            Unreadable::Row(StoreError::Corrupt {
                stream, version, ..
            }) => instrument::stopping(name, position, Some((stream, *version)), None),
            Unreadable::Row(_) => instrument::stopping(name, position, None, None),
            Unreadable::Upcast {
                stream,
                version,
                error,
            } => instrument::stopping(
                name,
                position,
                Some((stream, *version)),
                Some(&error.event_type),
            ),
            Unreadable::Undecodable {
                stream,
                version,
                event_type,
                ..
            } => instrument::stopping(name, position, Some((stream, *version)), Some(event_type)),
        };
        let error = error.stop(name, position);
        let kind = match error {
            RunnerError::UpcastFailed { .. } => "RunnerError::UpcastFailed",
            RunnerError::HandlerFailed { .. } => "RunnerError::HandlerFailed",
            _ => "RunnerError::UnreadableEvent",
        };
        instrument::stopped(&span, kind, &error);
        log_stopped(&error);
        error.into()
    }

    /// Under [`UnreadablePolicy::Park`], parks `event` when its handler could not decode
    /// it (`error`): `Ok(reason)` when parked, the error back otherwise (retried or stopped
    /// at as any handler's failure).
    pub(super) async fn park_if_undecodable(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        event: &EventEnvelope,
        error: ProjectionError,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Result<String, ProjectionError>, Halt> {
        let error = match error {
            ProjectionError::Decode(error)
                if self.settings.on_unreadable == UnreadablePolicy::Park =>
            {
                error
            }
            other => return Ok(Err(other)),
        };
        let undecodable = Unreadable::Undecodable {
            stream: event.stream.clone(),
            version: event.version,
            event_type: event.event_type.to_string(),
            error,
        };
        self.unreadable(name, lease, event.position, undecodable, shutdown)
            .await
            .map(Ok)
    }

    /// Hands the parked events that can now be read (the row was repaired) to the
    /// projection, oldest first, and returns those still parked.
    ///
    /// Waits for the lease first, like every run (stop the projection's running runner, or
    /// call this on a runner that is not running). An event handled here is unparked; one
    /// still unreadable stays parked with its latest error; one no longer in the store is
    /// unparked. The handler sees these events late, after later ones: it must not rely on
    /// their order. The checkpoint does not move.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use eventsource_runtime::prelude::*;
    /// use eventsource_runtime::projection::checkpoint::{
    ///     CheckpointStore, InMemoryCheckpointStore, ParkedEvent,
    /// };
    /// use eventsource_runtime::projection::runner::{ProjectionRunner, UnreadablePolicy};
    ///
    /// #[derive(Default)]
    /// struct Seen(Vec<u64>);
    ///
    /// #[eventsource_runtime::async_trait]
    /// impl Projection for Seen {
    ///     fn name(&self) -> &str { "Seen" }
    ///     async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
    ///         self.0.push(event.position);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryEventStore::new();
    /// let event = eventsource_runtime::event::NewEvent::new("Placed", 1, serde_json::json!({}));
    /// store.append(&StreamId::new("Order", "o-1"), ExpectedVersion::Any, vec![event]).await?;
    /// let checkpoints = InMemoryCheckpointStore::new();
    /// // Say event 1 was parked while its row was damaged, and has been repaired since.
    /// checkpoints.park("Seen", &ParkedEvent::new(1, "schema_version: out of range")).await?;
    /// checkpoints.save("Seen", 1).await?;
    ///
    /// let runner = ProjectionRunner::new(Arc::new(store), Arc::new(checkpoints), Seen::default())
    ///     .on_unreadable(UnreadablePolicy::Park);
    /// assert_eq!(runner.parked().await?.len(), 1);
    /// assert!(runner.retry_parked().await?.is_empty(), "handled, so no longer parked");
    /// assert_eq!(runner.projection().lock().await.0, [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`RunnerError::HandlerFailed`] when the handler keeps failing on one (it stays
    /// parked), [`RunnerError::LeaseLost`], [`RunnerError::Store`].
    pub async fn retry_parked(&self) -> Result<Vec<ParkedEvent>, RunnerError> {
        let mut shutdown = Shutdown::never();
        let name = self.name().await;
        let result = match self.acquire(&name, &mut shutdown).await {
            Ok(lease) => {
                let result = self.retry_held(&name, &*lease, &mut shutdown).await;
                lease.release().await;
                result
            }
            Err(halt) => Err(halt),
        };
        result.map_err(|halt| match halt {
            Halt::Failed(error) => error,
            Halt::LeaseLost => {
                instrument::lease_lost(&name);
                RunnerError::LeaseLost { projection: name }
            }
            Halt::Shutdown => unreachable!("no shutdown signal"),
        })
    }

    async fn retry_held(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Vec<ParkedEvent>, Halt> {
        let parked = self
            .reading(name, "list parked events", shutdown, || {
                self.checkpoints.parked(name)
            })
            .await?;
        let upcasters = self.projection.lock().await.upcasters();
        for parked in parked {
            self.retry_one(name, lease, parked.position, &upcasters, shutdown)
                .await?;
        }
        self.reading(name, "list parked events", shutdown, || {
            self.checkpoints.parked(name)
        })
        .await
    }

    /// Retries the event parked at `at`: handed to the projection and unparked when it can
    /// now be read (unparked too when it is no longer in the store), parked again with its
    /// latest error when it cannot.
    async fn retry_one(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        at: u64,
        upcasters: &Upcasters,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Retried, Halt> {
        let read = match self.read_some(name, at, 1, shutdown).await? {
            Ok(events) => upcast_batch(upcasters, events),
            Err(error) if unreadable_at(&error) == Some(at) => Read::Unreadable {
                position: at,
                error: Unreadable::Row(error),
            },
            // Another event is unreadable: this one is gone.
            Err(_) => Read::Events(Vec::new()),
        };
        match read {
            Read::Events(events) => {
                for event in events.iter().filter(|e| e.position == at) {
                    if let Delivered::Parked(reason) =
                        self.deliver(name, lease, event, shutdown).await?
                    {
                        // Its handler still cannot decode it: parked again, with why.
                        return Ok(Retried::ParkedAgain(reason));
                    }
                }
                // Handled, or no longer in the store: nothing left to retry.
            }
            Read::Unreadable { position, error } if position == at => {
                let again = ParkedEvent::new(at, error.reason());
                self.retrying(name, "park event", shutdown, || {
                    self.checkpoints.park(name, &again)
                })
                .await?;
                return Ok(Retried::ParkedAgain(again.error));
            }
            Read::Unreadable { .. } => {}
        }
        self.retrying(name, "unpark event", shutdown, || {
            self.checkpoints.unpark(name, at)
        })
        .await?;
        Ok(Retried::Handled)
    }

    /// Retries the parked events an operator asked to retry
    /// ([`CheckpointStore::request_retry`](crate::projection::checkpoint::CheckpointStore::request_retry)),
    /// as [`retry_parked`](Self::retry_parked) does, while the runner follows the log. A
    /// handler that keeps failing on one leaves it parked with the handler's error (the
    /// request cleared) instead of stopping the runner.
    pub(super) async fn retry_requested(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        upcasters: &Upcasters,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let requested = self
            .reading(name, "list retry requests", shutdown, || {
                self.checkpoints.retry_requests(name)
            })
            .await?;
        for at in requested {
            match self.retry_one(name, lease, at, upcasters, shutdown).await {
                Ok(Retried::Handled) => log_info!(
                    projection = name,
                    position = at,
                    "projection runner retried a parked event on request: handled"
                ),
                Ok(Retried::ParkedAgain(reason)) => log_warn!(
                    projection = name,
                    position = at,
                    error = %reason,
                    "projection runner retried a parked event on request: still unreadable, parked again"
                ),
                Err(Halt::Failed(failed @ RunnerError::HandlerFailed { .. })) => {
                    let again = ParkedEvent::new(at, Chain(&failed).to_string());
                    self.retrying(name, "park event", shutdown, || {
                        self.checkpoints.park(name, &again)
                    })
                    .await?;
                    log_warn!(
                        projection = name,
                        position = at,
                        error = %again.error,
                        "projection runner retried a parked event on request: the handler failed, parked again"
                    );
                }
                Err(halt) => return Err(halt),
            }
        }
        Ok(())
    }
}

/// What handing one event to the projection came to.
pub(super) enum Delivered {
    /// Handled (or not one the projection handles).
    Handled,
    /// Its handler could not decode it, and it was parked with this reason
    /// ([`ProjectionRunner::park_if_undecodable`]).
    Parked(String),
}

/// What retrying one parked event gave.
enum Retried {
    /// Handled (or gone from the store): no longer parked.
    Handled,
    /// Still unreadable: parked again with this error.
    ParkedAgain(String),
}

/// When a following runner last asked for retry requests: at most once per poll interval.
#[derive(Debug, Default)]
pub(super) struct RetryRequests {
    asked_at: Option<std::time::Instant>,
}

impl RetryRequests {
    /// Whether to ask now (and, if so, remembers that it did).
    pub(super) fn due(&mut self, interval: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        if self
            .asked_at
            .is_some_and(|at| now.duration_since(at) < interval)
        {
            return false;
        }
        self.asked_at = Some(now);
        true
    }
}
