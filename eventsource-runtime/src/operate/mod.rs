//! What an operator reads from a service's store, computed once for the `eventsource`
//! command line and the `console` page (each formats it its own way):
//! every projection's [`status`] (checkpoint, lag, owners, parked events, and who holds the
//! store's high-water mark back), the
//! [events](read_events) of a stream, of the log or of a correlation, and a correlation's
//! [causation tree](causation_tree) laid out for drawing; with a broker's feature, a consumer
//! group's dead letters opened from the broker's URL ([`DeadLetterAddress`]); and what an
//! operator changes, each checked before anything changes and refused while a runner or
//! worker holds what it would touch: [`reset`] a projection's checkpoint, [`split`] its
//! segments again, [`rebuild`] it beside itself under a new name, [`retire`] one no runner
//! runs any more.
//!
//! It works through the stores' public traits only ([`EventStore`],
//! [`CheckpointStore`], [`SegmentClaims`]), so it works on any store.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use eventsource_runtime::operate::{self, Stores};
//! use eventsource_runtime::projection::checkpoint::{CheckpointStore as _, InMemoryCheckpointStore};
//! use eventsource_runtime::store::InMemoryEventStore;
//!
//! // A service's stores: `Stores::postgres(&store)`, `Stores::sqlite(&store)`.
//! let checkpoints = InMemoryCheckpointStore::new();
//! checkpoints.save("orders", 0).await?;
//! let stores = Stores::new(Arc::new(InMemoryEventStore::new()), Arc::new(checkpoints));
//! let report = operate::status(&stores).await?;
//! for projection in &report.projections {
//!     println!("{} is {} events behind", projection.name, projection.lag.events);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod causation;
#[cfg(feature = "broker")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rabbitmq", feature = "kafka", feature = "nats")))
)]
mod dead_letters;
mod events;
mod known;
mod open;
mod parked;
mod rebuild;
mod reset;
mod retire;
mod split;
mod status;

use std::sync::Arc;

pub use causation::{
    DrawnNode, causation_tree, causation_tree_of, causation_tree_with, drawn_nodes,
};
#[cfg(feature = "broker")]
pub use dead_letters::{DeadLetterAddress, DeadLetterAddressError};
pub use events::{EventPage, EventQuery, EventView, parse_stream, read_events, trace_link};
pub use open::OpenedStore;
pub use parked::{ParkedView, parked_events, retry_parked, skip_parked};
pub use rebuild::{Rebuild, rebuild};
pub use reset::{Moved, Reset, reset};
pub use retire::{Retired, retire};
pub use split::{Split, split};
pub use status::{
    CheckpointLag, LeaseView, MarkHolderView, ProjectionStatus, SegmentStatus, StatusReport,
    StopView, segment_of_name, split_projections, status,
};

use crate::projection::checkpoint::CheckpointStore;
use crate::projection::segments::SegmentClaims;
use crate::store::{EventStore, StoreError};

/// The stores an operator reads: the events, the checkpoints (with leases and parked
/// events) and, where the store keeps them across processes, split projections' segment
/// claims.
#[derive(Clone)]
pub struct Stores {
    /// The event store.
    pub events: Arc<dyn EventStore>,
    /// The checkpoint store: checkpoints, leases, parked events.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Where split projections' segments are claimed, when the store keeps the claims
    /// across processes (PostgreSQL; SQLite's live in the service's process).
    pub claims: Option<Arc<dyn SegmentClaims>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("events", &self.events.system_name())
            .field("claims", &self.claims.is_some())
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// The event and checkpoint stores, without segment claims.
    #[must_use]
    pub fn new(events: Arc<dyn EventStore>, checkpoints: Arc<dyn CheckpointStore>) -> Self {
        Self {
            events,
            checkpoints,
            claims: None,
        }
    }

    /// With the store where split projections' segments are claimed.
    #[must_use]
    pub fn with_claims(mut self, claims: Arc<dyn SegmentClaims>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// A PostgreSQL store's events, checkpoints and segment claims.
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres(store: &crate::postgres::PostgresEventStore) -> Self {
        let checkpoints = Arc::new(store.checkpoint_store());
        Self::new(Arc::new(store.clone()), checkpoints.clone()).with_claims(checkpoints)
    }

    /// A SQLite store's events and checkpoints (its segment claims live in the service's
    /// process).
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn sqlite(store: &crate::sqlite::SqliteEventStore) -> Self {
        Self::new(Arc::new(store.clone()), Arc::new(store.checkpoint_store()))
    }
}

/// Why an operator's read or change failed. A read changes nothing, whatever the error; a
/// change checks what refuses it before it changes anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperateError {
    /// The store failed while doing `what`.
    #[error("{what}")]
    Store {
        /// What was being read.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A value given is not acceptable (a malformed stream id, a position past the head).
    #[error("{0}")]
    Invalid(String),
    /// What was named does not exist (an unknown projection, a correlation without events).
    #[error("{0}")]
    NotFound(String),
    /// A runner or worker holds what the change would touch: nothing changed.
    #[error("{0}")]
    Refused(String),
}

impl OperateError {
    /// A store error met while doing `what`.
    pub fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> Self {
        let what = what.into();
        move |source| Self::Store { what, source }
    }
}
