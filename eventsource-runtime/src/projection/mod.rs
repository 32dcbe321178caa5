//! Projections: read models built from stored events, their in-process delivery, and
//! the checkpointed [`runner`] that feeds them from a store.

pub mod checkpoint;
mod instrument;
pub mod runner;
pub mod segments;

use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::event::{DecodeError, EventEnvelope};

/// A projection could not handle an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The event could not be decoded into the type the projection expects.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The projection's own failure (its read store is down, ...).
    #[error(transparent)]
    Handler(Box<dyn std::error::Error + Send + Sync>),
    /// The store the projection writes its model to is unavailable (a lost connection, a
    /// database restarting): the runner retries without limit, as it does for its own
    /// stores ([`max_store_attempts`](runner::ProjectionRunner::max_store_attempts)), not
    /// [`max_attempts`](runner::ProjectionRunner::max_attempts) times.
    #[error(transparent)]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// A write conditional on the segment's claim was refused: another worker took the
    /// segment over ([`Fence::fenced`](segments::Fence::fenced) was called). The runner
    /// stops handling the segment without retrying.
    #[error("segment {segment} was taken over by another worker (fenced)")]
    Fenced {
        /// The segment.
        segment: crate::store::Segment,
    },
}

impl ProjectionError {
    /// Wraps a projection's own error.
    pub fn handler(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Handler(error.into())
    }
}

/// A batch of events was applied only in part: the first [`handled`](Self::handled) of them,
/// then the next one failed with [`error`](Self::error).
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchFailure {
    /// How many events, from the first of the batch, were applied.
    pub handled: usize,
    /// Why the next one was not.
    pub error: ProjectionError,
}

impl BatchFailure {
    /// The first `handled` events were applied; the next one failed with `error`.
    #[must_use]
    pub fn new(handled: usize, error: ProjectionError) -> Self {
        Self { handled, error }
    }
}

/// A read model fed with stored events.
///
/// ```
/// use eventsource_runtime::event::EventEnvelope;
/// use eventsource_runtime::projection::{Projection, ProjectionError};
///
/// #[derive(Default)]
/// struct EventCounter { seen: u64 }
///
/// #[eventsource_runtime::async_trait]
/// impl Projection for EventCounter {
///     fn name(&self) -> &str { "EventCounter" }
///     async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
///         self.seen += 1;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Projection: Send + 'static {
    /// A stable name (used in telemetry and for checkpoints).
    fn name(&self) -> &str;

    /// Whether the projection wants events of this type; others are not delivered.
    fn handles(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }

    /// How events stored by older code become the events this projection reads (see
    /// [`upcast`](crate::event::upcast)): a [runner](runner::ProjectionRunner) upcasts
    /// every event it reads with them before [`handles`](Self::handles) and the handler
    /// see it. None by default; `#[projection]` merges the upcasters of the event sets its
    /// handlers' types belong to.
    fn upcasters(&self) -> crate::event::upcast::Upcasters {
        crate::event::upcast::Upcasters::default()
    }

    /// Whether this projection's spans are on (projections are off by default; see
    /// `telemetry::toggles::set_projection_tracing` for the process-wide override).
    fn tracing_enabled(&self) -> bool {
        false
    }

    /// Overrides the projection span's name (default `projection.{name}`).
    fn span_name(&self) -> Option<&str> {
        None
    }

    /// Updates the read model with one event. Events of a stream arrive in version order.
    ///
    /// A [runner](runner::ProjectionRunner) delivers at least once: after a crash or a
    /// retry an event may come again, so a handler should be idempotent (upsert by
    /// aggregate id, or skip events at or below a position the read model stores).
    ///
    /// # Errors
    /// Whatever keeps the projection from applying the event.
    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError>;

    /// The most events a [runner](runner::ProjectionRunner) hands over in one
    /// [`handle_batch`](Self::handle_batch) call (bounded by the runner's read batch size).
    /// The default, 1, has it call [`handle`](Self::handle) once per event; a projection
    /// that gains from writing many events at once (one statement, one round trip: the
    /// [relay](crate::relay) keeps a batch of messages in flight) returns more.
    fn max_batch(&self) -> usize {
        1
    }

    /// Updates the read model with `events`, in order: consecutive stored events of types
    /// this projection [handles](Self::handles), at most [`max_batch`](Self::max_batch).
    /// The default hands them to [`handle`](Self::handle) one after the other.
    ///
    /// # Errors
    /// A [`BatchFailure`]: how many of `events`, from the first, were applied (the runner
    /// moves its checkpoint past them) and what kept the next one from being applied (the
    /// runner retries from it).
    async fn handle_batch(&mut self, events: &[EventEnvelope]) -> Result<(), BatchFailure> {
        for (handled, event) in events.iter().enumerate() {
            self.handle(event)
                .await
                .map_err(|error| BatchFailure::new(handled, error))?;
        }
        Ok(())
    }

    /// Clears the read model, before a [rebuild](runner::ProjectionRunner::rebuild)
    /// replays every event into it. The default does nothing: a projection whose model
    /// lives elsewhere (a database table) clears it here, or its owner clears it before
    /// the rebuild.
    ///
    /// # Errors
    /// Whatever keeps the model from being cleared; the rebuild then stops.
    async fn reset(&mut self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// A projection registered for delivery, shared with whoever reads its model.
pub type SharedProjection<P> = Arc<Mutex<P>>;

/// A registered projection of any type.
pub type DynProjection = Arc<Mutex<dyn Projection>>;

/// One projection failed to handle one delivered event.
#[derive(Debug, thiserror::Error)]
#[error("projection `{projection}` failed on event at position {position}")]
pub struct DeliveryFailure {
    /// The projection's name.
    pub projection: String,
    /// The event's global position.
    pub position: u64,
    /// What went wrong.
    #[source]
    pub error: ProjectionError,
}

/// Projections that receive events in process as soon as they are saved.
///
/// Delivery is synchronous with the save: when the command call returns, every registered
/// projection has seen its events (or reported a failure). A failing projection does not
/// stop delivery to the others, and never undoes the save: the events are stored.
/// Cheap to clone; clones share the registrations.
#[derive(Clone, Default)]
pub struct ProjectionRegistry {
    /// Replaced, not changed, by a registration: a delivery takes the current list by
    /// reference count instead of copying it.
    projections: Arc<RwLock<Arc<[DynProjection]>>>,
}

impl std::fmt::Debug for ProjectionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRegistry")
            .field("projections", &self.len())
            .finish()
    }
}

impl ProjectionRegistry {
    /// A registry with no projection.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `projection` and returns a handle to read its model.
    pub fn register<P: Projection>(&self, projection: P) -> SharedProjection<P> {
        let shared = Arc::new(Mutex::new(projection));
        self.register_shared(Arc::clone(&shared) as DynProjection);
        shared
    }

    /// Registers a projection that is already shared.
    pub fn register_shared(&self, projection: DynProjection) {
        let mut projections = self
            .projections
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let registered = projections.iter().cloned().chain([projection]).collect();
        *projections = registered;
    }

    /// How many projections are registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no projection is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<[DynProjection]>> {
        self.projections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Arc<[DynProjection]> {
        Arc::clone(&self.read())
    }

    /// Delivers `events`, in order, to every projection that handles their type.
    ///
    /// Returns the failures; a projection that failed on an event still receives the
    /// following ones (each event is independent for it to retry or skip).
    pub async fn deliver(&self, events: &[EventEnvelope]) -> Vec<DeliveryFailure> {
        let mut failures = Vec::new();
        for projection in self.snapshot().iter() {
            // Uncontended (the usual case), without making and polling a lock future.
            let mut projection = match projection.try_lock() {
                Ok(projection) => projection,
                Err(_) => projection.lock().await,
            };
            for event in events {
                if !projection.handles(&event.event_type) {
                    continue;
                }
                if let Err(error) = handle_one(&mut *projection, event).await {
                    failures.push(DeliveryFailure {
                        projection: projection.name().to_owned(),
                        position: event.position,
                        error,
                    });
                }
            }
        }
        failures
    }
}

/// Hands consecutive events to a projection in one [`Projection::handle_batch`] call,
/// inside one span: a new root with a link to the context stored with each event.
///
/// # Errors
/// The projection's [`BatchFailure`].
pub async fn handle_many(
    projection: &mut dyn Projection,
    events: &[EventEnvelope],
) -> Result<(), BatchFailure> {
    let span = instrument::batch_span(projection, events);
    let result = span.run(projection.handle_batch(events)).await;
    if let Err(failure) = &result {
        instrument::handled(&span, &Err(&failure.error));
    }
    result
}

/// Hands one event to a projection inside its span: a new root linked to the context
/// stored in the event.
pub async fn handle_one(
    projection: &mut dyn Projection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let span = instrument::span(projection, event);
    let result = span.run(projection.handle(event)).await;
    instrument::handled(&span, &result.as_ref().map(drop));
    result
}
