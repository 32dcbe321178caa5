//! Who holds a store's high-water mark back ([`EventStore::mark_holder`](super::EventStore::mark_holder)).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long a session may hold the store's high-water mark back before it is reported as
/// late ([`MarkHolder::is_late`]): `WARN` in `eventsource status` and on the console page,
/// a WARN line and `mark_held_by` in a runner's or relay's health. An append's transaction
/// that runs this long holds every projection and relay behind it.
pub const MARK_HELD_WARN_AFTER: Duration = Duration::from_secs(5);

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

    /// How long its transaction has run, when known (zero for a start "in the future":
    /// clocks apart).
    #[must_use]
    pub fn held_for(&self) -> Option<Duration> {
        let since = self.transaction_since?;
        Some((Utc::now() - since).to_std().unwrap_or_default())
    }

    /// It has held the mark longer than [`MARK_HELD_WARN_AFTER`]: readers wait on it.
    #[must_use]
    pub fn is_late(&self) -> bool {
        self.held_for()
            .is_some_and(|held| held > MARK_HELD_WARN_AFTER)
    }
}
