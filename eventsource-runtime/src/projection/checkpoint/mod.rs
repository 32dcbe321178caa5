//! Checkpoints: how far each projection got in the store's global order, the lease that
//! keeps two runners from processing the same projection at once, and the events a
//! projection parked because they could not be read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::StoreError;

mod memory;

pub use memory::{InMemoryCheckpointStore, InProcessLease};

/// Held while a runner owns a projection; dropping it (or [`release`](Self::release))
/// lets another runner take over.
#[async_trait]
pub trait ProjectionLease: Send + Sync {
    /// Whether the lease is still held. A lease on a database session (PostgreSQL's) is
    /// lost when that session ends (the connection breaks, the server restarts, an
    /// administrator terminates it) although its holder lives on: from then on another
    /// runner may take the projection, so a runner asks before every handler call and
    /// stops once it is `false`. Cheap (no I/O). The default, `true`, suits leases that
    /// last as long as their value (the in-process ones).
    fn is_held(&self) -> bool {
        true
    }

    /// Saves the projection's checkpoint through the lease itself, for a lease that can (a
    /// database lease, on its own session, so that no save lands once the lease is lost):
    /// `Some` with the outcome, [`StoreError::LeaseLost`] once the lease is lost. `None`
    /// (the default) when it cannot, or `projection` is not the one it holds: the
    /// checkpoint store saves then ([`CheckpointStore::save_leased`]).
    async fn save_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> Option<Result<(), StoreError>> {
        let _ = (projection, position);
        None
    }

    /// Resets the projection's checkpoint to `position` through the lease itself, as
    /// [`save_checkpoint`](Self::save_checkpoint) saves it, but back as well as forward
    /// ([`CheckpointStore::reset`]). `None` (the default) when it cannot: the checkpoint
    /// store resets then ([`CheckpointStore::reset_leased`]).
    async fn reset_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> Option<Result<(), StoreError>> {
        let _ = (projection, position);
        None
    }

    /// Gives the projection up now (instead of on drop).
    async fn release(self: Box<Self>);
}

/// An event a projection runner could not read from the store and set aside (its
/// [`UnreadablePolicy::Park`](super::runner::UnreadablePolicy::Park)) to go on with the
/// following ones.
///
/// ```
/// use eventsource_runtime::projection::checkpoint::ParkedEvent;
///
/// let parked = ParkedEvent::new(10, "metadata: invalid type: sequence, expected a map");
/// assert_eq!(parked.position, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The event's global position.
    pub position: u64,
    /// Why it could not be read (the store's error, with its sources).
    pub error: String,
    /// When it was parked (to the store's precision: microseconds on PostgreSQL).
    pub parked_at: DateTime<Utc>,
}

impl ParkedEvent {
    /// The event at `position`, parked now because of `error`.
    pub fn new(position: u64, error: impl Into<String>) -> Self {
        Self {
            position,
            error: error.into(),
            parked_at: Utc::now(),
        }
    }

    /// A parked event as a SQL store keeps it (a position is never negative).
    #[cfg(feature = "sql")]
    pub(crate) fn stored(position: i64, error: String, parked_at: DateTime<Utc>) -> Self {
        Self {
            position: u64::try_from(position).unwrap_or(0),
            error,
            parked_at,
        }
    }
}

/// Why a projection's runner stopped on an error, as it recorded it
/// ([`CheckpointStore::record_stop`]) for an operator's tool to show, until a runner
/// takes the projection again.
///
/// ```
/// use eventsource_runtime::projection::checkpoint::RunnerStop;
///
/// let stop = RunnerStop::new("handler `orders` failed 5 times on event 12: timed out");
/// assert!(stop.error.starts_with("handler"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerStop {
    /// When it stopped (to the store's precision: microseconds on PostgreSQL).
    pub at: DateTime<Utc>,
    /// The error it stopped on, with its sources, on one line.
    pub error: String,
}

impl RunnerStop {
    /// A stop now, on `error`.
    pub fn new(error: impl Into<String>) -> Self {
        Self::at(Utc::now(), error)
    }

    /// A stop at `at`, on `error` (as a store read it back).
    pub fn at(at: DateTime<Utc>, error: impl Into<String>) -> Self {
        Self {
            at,
            error: error.into(),
        }
    }
}

/// A checkpoint as its store keeps it ([`CheckpointStore::checkpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointRecord {
    /// Its name: a projection's or a relay's, `{projection}[{index}/{count}]` for a
    /// segment of a split one ([`Segment::checkpoint_name`](crate::store::Segment::checkpoint_name)).
    pub projection: String,
    /// The global position of the last event handled.
    pub position: u64,
    /// When it was last saved or reset, where the store records it (the SQL stores).
    pub updated_at: Option<DateTime<Utc>>,
    /// Why its runner stopped, when the last runner to hold it stopped on an error (and
    /// none has taken it since).
    pub stopped: Option<RunnerStop>,
}

impl CheckpointRecord {
    /// The checkpoint `projection` at `position`, saved at `updated_at`.
    #[must_use]
    pub fn new(
        projection: impl Into<String>,
        position: u64,
        updated_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            projection: projection.into(),
            position,
            updated_at,
            stopped: None,
        }
    }

    /// The record, its runner stopped as `stopped` says.
    #[must_use]
    pub fn with_stop(mut self, stopped: Option<RunnerStop>) -> Self {
        self.stopped = stopped;
        self
    }
}

/// Who holds a projection's lease, as far as its store can tell
/// ([`CheckpointStore::lease_holder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The holder's process id: the database session's server process on PostgreSQL
    /// (`pg_stat_activity.pid`), this process for the in-process leases.
    pub process_id: Option<u32>,
    /// The application name its connection gave (PostgreSQL's `application_name`), if any.
    pub application: Option<String>,
    /// The address it connects from (PostgreSQL's `client_addr`), if any.
    pub client: Option<String>,
    /// Since when its session exists (PostgreSQL's `backend_start`), if known.
    pub since: Option<DateTime<Utc>>,
}

impl LeaseHolder {
    /// The holder of an in-process lease: this process.
    #[must_use]
    pub fn this_process() -> Self {
        Self {
            process_id: Some(std::process::id()),
            application: None,
            client: None,
            since: None,
        }
    }

    /// A holder described by what the database tells of its session.
    #[must_use]
    pub fn session(
        process_id: Option<u32>,
        application: Option<String>,
        client: Option<String>,
        since: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            process_id,
            application,
            client,
            since,
        }
    }
}

/// `pid 4242 (application "orders-service", client 10.0.0.7, since 2026-11-27T10:00:00Z)`.
impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.process_id {
            Some(pid) => write!(f, "pid {pid}")?,
            None => f.write_str("an unknown process")?,
        }
        let mut details = Vec::new();
        if let Some(application) = self.application.as_deref().filter(|a| !a.is_empty()) {
            details.push(format!("application {application:?}"));
        }
        if let Some(client) = &self.client {
            details.push(format!("client {client}"));
        }
        if let Some(since) = self.since {
            details.push(format!(
                "since {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        Ok(())
    }
}

/// Where projection runners keep their checkpoints, and the events they parked.
///
/// A checkpoint is the global position of the last event a projection has handled
/// successfully (0: none yet); the runner resumes after it. A [`save`](Self::save) never
/// moves it back: a save that comes late (a background save overtaken by a later one, a
/// retry, a stalled worker's) cannot undo progress. Moving it back is a deliberate act of
/// its own, [`reset`](Self::reset) (a rebuild from 0, a replay from an older position).
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The projection's checkpoint (0 when it has none).
    ///
    /// # Errors
    /// The backend's errors.
    async fn load(&self, projection: &str) -> Result<u64, StoreError>;

    /// Records that the projection handled everything up to `position`: the checkpoint
    /// becomes `position` unless it is further already (a save never moves it back; see
    /// [`reset`](Self::reset)).
    ///
    /// # Errors
    /// The backend's errors.
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError>;

    /// Sets the projection's checkpoint to `position`, back as well as forward: the runner
    /// hands over every event after it again. For a rebuild (0) or a replay from an older
    /// position, while no runner runs the projection (a running one would save its own
    /// position again; [`ProjectionRunner::rebuild`](super::runner::ProjectionRunner::rebuild)
    /// resets as the lease's holder, [`reset_leased`](Self::reset_leased)).
    ///
    /// # Errors
    /// The backend's errors.
    async fn reset(&self, projection: &str, position: u64) -> Result<(), StoreError>;

    /// [`reset`](Self::reset) as the holder of `lease`, as [`save_leased`](Self::save_leased)
    /// saves: through the lease when it can ([`ProjectionLease::reset_checkpoint`]),
    /// otherwise after checking [`ProjectionLease::is_held`].
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the lease is lost, else as [`reset`](Self::reset).
    async fn reset_leased(
        &self,
        lease: &dyn ProjectionLease,
        projection: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        write_leased(self, lease, projection, position, Write::Reset).await
    }

    /// Records the checkpoint as [`save`](Self::save) does, as the holder of `lease`: once
    /// the lease is lost nothing is saved. Runners save this way, so a runner that lost
    /// its lease cannot move the checkpoint of the runner that took over.
    ///
    /// The default lets a lease that can save through itself do so
    /// ([`ProjectionLease::save_checkpoint`]: the PostgreSQL lease, on its own session, so
    /// the save cannot land after the lock is gone); otherwise it checks
    /// [`ProjectionLease::is_held`], then calls [`save`](Self::save).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the lease is lost, else as [`save`](Self::save).
    async fn save_leased(
        &self,
        lease: &dyn ProjectionLease,
        projection: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        write_leased(self, lease, projection, position, Write::Save).await
    }

    /// Takes the projection for this runner, or `None` when another runner holds it.
    ///
    /// # Errors
    /// The backend's errors.
    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError>;

    /// Adds `event` to the projection's parked events (replacing one parked at the same
    /// position).
    ///
    /// # Errors
    /// The backend's errors.
    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError>;

    /// The projection's parked events, by position.
    ///
    /// # Errors
    /// The backend's errors.
    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError>;

    /// Removes the event parked at `position`; whether there was one.
    ///
    /// # Errors
    /// The backend's errors.
    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError>;

    /// Asks the projection's running runner to retry the event parked at `position` on its
    /// next poll (what `eventsource parked retry` does: the tool has no handler, the runner
    /// has); whether an event is parked there. The request is kept with the parked event:
    /// [`unpark`](Self::unpark) removes it, [`park`](Self::park) again clears it. The
    /// default fails with [`StoreError::Unsupported`].
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's errors.
    async fn request_retry(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        let _ = (projection, position);
        Err(StoreError::Unsupported {
            operation: "request a parked event's retry",
        })
    }

    /// The positions of the projection's parked events whose retry was requested
    /// ([`request_retry`](Self::request_retry)), in order: what a following runner retries
    /// on its next poll. The default: none.
    ///
    /// # Errors
    /// The backend's errors.
    async fn retry_requests(&self, projection: &str) -> Result<Vec<u64>, StoreError> {
        let _ = projection;
        Ok(Vec::new())
    }

    /// Forgets the projection: deletes its checkpoint and its parked events, so that
    /// operators' tools ([`checkpoints`](Self::checkpoints),
    /// [`parked_counts`](Self::parked_counts)) stop listing it. For retiring a projection
    /// no runner runs any more (the old name after a rebuild under a new one; what
    /// `eventsource projection retire` does, holding its lease); a runner started again
    /// under the name starts from 0. Whether there was anything to forget. The default
    /// fails with [`StoreError::Unsupported`].
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's errors.
    async fn forget(&self, projection: &str) -> Result<bool, StoreError> {
        let _ = projection;
        Err(StoreError::Unsupported {
            operation: "forget a projection",
        })
    }

    /// Every checkpoint the store keeps, by name: what an operator's tool lists (the
    /// `eventsource status` command). The default, for a store of your own, fails with
    /// [`StoreError::Unsupported`].
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's errors.
    async fn checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        Err(StoreError::Unsupported {
            operation: "list checkpoints",
        })
    }

    /// How many events each projection has parked, for the projections that parked any
    /// (one query, where [`parked`](Self::parked) asks per projection). The default fails
    /// with [`StoreError::Unsupported`].
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's errors.
    async fn parked_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Err(StoreError::Unsupported {
            operation: "count parked events",
        })
    }

    /// Records that the projection's runner stopped on an error, for an operator's tool
    /// to show ([`checkpoints`](Self::checkpoints) hands it back; a projection with no
    /// checkpoint yet gets one at 0). The runner records it before it releases the lease,
    /// and the next runner to take the lease clears it
    /// ([`clear_stop`](Self::clear_stop)); a split projection's worker records a segment's
    /// stop under the segment's checkpoint name before it gives the claim up, and the worker
    /// that claims the segment next clears it. The default, for a store of your own, records
    /// nothing.
    ///
    /// # Errors
    /// The backend's errors.
    async fn record_stop(&self, projection: &str, stop: &RunnerStop) -> Result<(), StoreError> {
        let _ = (projection, stop);
        Ok(())
    }

    /// Clears what [`record_stop`](Self::record_stop) recorded of the projection, if
    /// anything. The default does nothing.
    ///
    /// # Errors
    /// The backend's errors.
    async fn clear_stop(&self, projection: &str) -> Result<(), StoreError> {
        let _ = projection;
        Ok(())
    }

    /// Who holds the projection's lease: `None` when it is free, or when the store
    /// cannot tell (the default; the SQLite and in-memory stores see only the leases of
    /// their own process). PostgreSQL names the database session holding the lock.
    ///
    /// # Errors
    /// The backend's errors.
    async fn lease_holder(&self, projection: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let _ = projection;
        Ok(None)
    }
}

/// A checkpoint's two writes: [`save`](CheckpointStore::save), forward only, and
/// [`reset`](CheckpointStore::reset), to any position.
#[derive(Debug, Clone, Copy)]
enum Write {
    Save,
    Reset,
}

/// `write` as the holder of `lease`: through the lease when it can write itself, otherwise
/// through `store` while the lease is held ([`StoreError::LeaseLost`] once it is not).
async fn write_leased<S: CheckpointStore + ?Sized>(
    store: &S,
    lease: &dyn ProjectionLease,
    projection: &str,
    position: u64,
    write: Write,
) -> Result<(), StoreError> {
    let through_lease = match write {
        Write::Save => lease.save_checkpoint(projection, position).await,
        Write::Reset => lease.reset_checkpoint(projection, position).await,
    };
    if let Some(written) = through_lease {
        return written;
    }
    if !lease.is_held() {
        return Err(StoreError::LeaseLost {
            projection: projection.to_owned(),
        });
    }
    match write {
        Write::Save => store.save(projection, position).await,
        Write::Reset => store.reset(projection, position).await,
    }
}
