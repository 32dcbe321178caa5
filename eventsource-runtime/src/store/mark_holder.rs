//! Who holds a store's high-water mark back ([`EventStore::mark_holder`](super::EventStore::mark_holder)).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The database session holding a store's high-water mark back: its append (at
/// `position`) is in a transaction that has not ended, and no reader (projection, relay)
/// gets past it until it does. Only the PostgreSQL store has one (see its
/// `idle_transaction_timeout` for the bound on a transaction that stalls); it reads it from
/// `pg_locks` and `pg_stat_activity`.
///
/// A role without `pg_read_all_stats` sees the other roles' sessions without their
/// application, address and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MarkHolder {
    /// The first position of the append in flight: the mark.
    pub position: u64,
    /// The session's server process (`pg_stat_activity.pid`).
    pub process_id: u32,
    /// The application name its connection gave, if any.
    pub application: Option<String>,
    /// The address it connects from, if any (none over a Unix socket).
    pub client: Option<String>,
    /// Since when its transaction runs (`xact_start`), if known.
    pub transaction_since: Option<DateTime<Utc>>,
    /// What the session is doing (`active`, `idle in transaction`, ...), if known.
    pub state: Option<String>,
}

impl MarkHolder {
    /// The session whose server process is `process_id`, holding the mark at `position`,
    /// nothing else known of it (a store of your own fills in the rest).
    #[must_use]
    pub fn new(position: u64, process_id: u32) -> Self {
        Self {
            position,
            process_id,
            application: None,
            client: None,
            transaction_since: None,
            state: None,
        }
    }
}
