//! Read models in the event store's PostgreSQL database, written in the transaction that
//! saves the projection's checkpoint, conditional on the segment's claim: a worker that
//! stalled and lost its segment can no longer write to them.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection as _, PgConnection};

use super::checkpoints::PostgresCheckpointStore;
use super::unavailable;
use crate::event::EventEnvelope;
use crate::event::upcast::Upcasters;
use crate::projection::segments::Fence;
use crate::projection::{BatchFailure, Projection, ProjectionError};
use crate::store::StoreError;

/// A projection whose read model lives in the event store's PostgreSQL database: each call
/// writes through the transaction that also saves the checkpoint. Wrap it in [`Fenced`]
/// and run it split into segments
/// ([`SegmentedRunner`](crate::projection::segments::SegmentedRunner)): its writes commit
/// only while the worker still holds the segment, however long the worker stalled.
///
/// ```no_run
/// use eventsource_runtime::event::EventEnvelope;
/// use eventsource_runtime::postgres::FencedProjection;
/// use eventsource_runtime::projection::ProjectionError;
///
/// struct OrderTotals;
///
/// #[eventsource_runtime::async_trait]
/// impl FencedProjection for OrderTotals {
///     fn name(&self) -> &str { "OrderTotals" }
///     async fn handle(
///         &mut self,
///         tx: &mut sqlx::PgConnection,
///         event: &EventEnvelope,
///     ) -> Result<(), ProjectionError> {
///         sqlx::query(
///             "INSERT INTO order_totals (order_id, events) VALUES ($1, 1)
///              ON CONFLICT (order_id) DO UPDATE SET events = order_totals.events + 1",
///         )
///         .bind(event.stream.aggregate_id())
///         .execute(tx)
///         .await
///         .map_err(ProjectionError::handler)?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait FencedProjection: Send + 'static {
    /// A stable name, as [`Projection::name`].
    fn name(&self) -> &str;

    /// As [`Projection::handles`].
    fn handles(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }

    /// As [`Projection::upcasters`].
    fn upcasters(&self) -> Upcasters {
        Upcasters::default()
    }

    /// As [`Projection::tracing_enabled`].
    fn tracing_enabled(&self) -> bool {
        false
    }

    /// Updates the read model with `event` through `tx`, the transaction the checkpoint is
    /// saved in. Nothing it writes commits unless the checkpoint is saved too.
    ///
    /// # Errors
    /// Whatever keeps the projection from applying the event; the transaction is rolled
    /// back, and the runner retries from the first event of the call.
    async fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), ProjectionError>;
}

/// Default [`Fenced::batch`].
pub const DEFAULT_FENCED_BATCH: usize = 64;

/// Default [`Fenced::idle_transaction_timeout`].
pub const DEFAULT_IDLE_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`FencedProjection`] as a [`Projection`]: each call of the runner (up to
/// [`batch`](Self::batch) consecutive events) is one transaction of the checkpoint store's
/// database that writes the read model, then saves the checkpoint on condition that the
/// worker still holds the segment ([`PostgresCheckpointStore::save_fenced_on`]), and
/// commits. When the segment was taken over, the transaction is rolled back, the fence is
/// tripped ([`Fence::fenced`]) and the runner stops handling the segment
/// ([`ProjectionError::Fenced`]).
///
/// Outside a split projection (a [`ProjectionRunner`](crate::projection::runner::ProjectionRunner)
/// of the whole log) the checkpoint is saved in the transaction without a condition: the
/// model and the checkpoint still move together.
///
/// A worker stopped in the middle of a transaction (a paused process) holds the locks of
/// the rows it wrote: the transaction sets `idle_in_transaction_session_timeout`
/// ([`idle_transaction_timeout`](Self::idle_transaction_timeout)), so the server ends it and
/// the worker that took over can write those rows.
pub struct Fenced<P> {
    projection: P,
    checkpoints: PostgresCheckpointStore,
    batch: usize,
    idle_timeout: Duration,
}

impl<P: FencedProjection> Fenced<P> {
    /// `projection`, its model written through transactions of `checkpoints`' pool (the
    /// database its checkpoints and claims are in).
    pub fn new(checkpoints: PostgresCheckpointStore, projection: P) -> Self {
        Self {
            projection,
            checkpoints,
            batch: DEFAULT_FENCED_BATCH,
            idle_timeout: DEFAULT_IDLE_TRANSACTION_TIMEOUT,
        }
    }

    /// The most events one transaction holds (default [`DEFAULT_FENCED_BATCH`]; at least 1).
    #[must_use]
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// How long the server lets a transaction sit idle before ending it (default
    /// [`DEFAULT_IDLE_TRANSACTION_TIMEOUT`]): keep a handler's own work between two
    /// statements shorter, and keep it at most the segment claim timeout (both 10 s by
    /// default): a worker paused inside a transaction holds its row locks until the server
    /// ends it, and the worker that took its segment over waits for them.
    #[must_use]
    pub fn idle_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The wrapped projection.
    pub fn inner(&self) -> &P {
        &self.projection
    }

    /// [`apply_once`](Self::apply_once), a lost connection reported as the store being
    /// unavailable (the runner then retries without limit).
    async fn apply(&mut self, events: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.apply_once(events).await.map_err(unavailable_if_lost)
    }

    /// One transaction: the events, then the checkpoint, on condition of the claim.
    async fn apply_once(&mut self, events: &[EventEnvelope]) -> Result<(), ProjectionError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let fence = Fence::current();
        // Lapsed (or taken over): nothing written; the worker tells how it was lost.
        if let Some(fence) = &fence
            && !fence.is_held()
        {
            return Err(fenced(fence));
        }
        let handler = |error: sqlx::Error| ProjectionError::handler(unavailable(error));
        let mut connection = self.checkpoints.pool().acquire().await.map_err(handler)?;
        let mut tx = connection.begin().await.map_err(handler)?;
        let idle = format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}",
            self.idle_timeout.as_millis().max(1)
        );
        sqlx::query(&idle)
            .execute(&mut *tx)
            .await
            .map_err(handler)?;
        for event in events {
            self.projection.handle(&mut tx, event).await?;
        }
        match &fence {
            Some(fence) => {
                let saved = self
                    .checkpoints
                    .save_fenced_on(&mut tx, fence, last.position)
                    .await
                    .map_err(ProjectionError::handler)?;
                if !saved {
                    drop(tx); // rolled back
                    fence.fenced();
                    return Err(fenced(fence));
                }
            }
            None => {
                let name = self.projection.name().to_owned();
                self.checkpoints
                    .save_on(&mut tx, &name, last.position)
                    .await
                    .map_err(ProjectionError::handler)?;
            }
        }
        tx.commit().await.map_err(handler)
    }
}

/// `error` as [`ProjectionError::Unavailable`] when it is the database's connection failing
/// (lost, refused, the server shutting down or terminating the session, the pool out of
/// connections), whether the runner's statements or the handler's own met it.
fn unavailable_if_lost(error: ProjectionError) -> ProjectionError {
    let lost = match &error {
        ProjectionError::Handler(source) => match source.downcast_ref::<sqlx::Error>() {
            Some(error) => is_connection_lost(error),
            None => source
                .downcast_ref::<StoreError>()
                .is_some_and(|e| matches!(e, StoreError::Unavailable(_))),
        },
        _ => false,
    };
    match error {
        ProjectionError::Handler(source) if lost => ProjectionError::Unavailable(source),
        other => other,
    }
}

/// Whether `error` is the connection failing rather than the statement.
fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-57P03: the server shutting down, crashed,
        // or not accepting connections yet (an administrator's termination is 57P01).
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

fn fenced(fence: &Fence) -> ProjectionError {
    ProjectionError::Fenced {
        segment: fence.claim().segment,
    }
}

#[async_trait]
impl<P: FencedProjection> Projection for Fenced<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn handles(&self, event_type: &str) -> bool {
        self.projection.handles(event_type)
    }

    fn upcasters(&self) -> Upcasters {
        self.projection.upcasters()
    }

    fn tracing_enabled(&self) -> bool {
        self.projection.tracing_enabled()
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.apply(std::slice::from_ref(event)).await
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn handle_batch(&mut self, events: &[EventEnvelope]) -> Result<(), BatchFailure> {
        // All or nothing: a failure rolls the whole call back.
        self.apply(events)
            .await
            .map_err(|error| BatchFailure::new(0, error))
    }
}
