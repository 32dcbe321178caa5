//! Who holds the high-water mark back: the session whose append is still in flight at the
//! lowest position, from the registrations in `pg_locks` and `pg_stat_activity`.

use chrono::{DateTime, Utc};

use super::schema::qualify;
use super::{PostgresEventStore, to_u64, unavailable};
use crate::store::{MarkHolder, StoreError};

/// The registration with the lowest first position, restored as the mark function does
/// (from its low 32 bits, as the highest position at most the sequence's last value).
const MARK_HOLDER: &str = "\
WITH last AS (
    SELECT coalesce(pg_sequence_last_value(
        pg_get_serial_sequence('__schema__.events', 'position')::regclass), 0) AS v
)
SELECT last.v - (((last.v - l.objid::bigint) % 4294967296) + 4294967296) % 4294967296 AS position,
       a.pid, a.application_name, host(a.client_addr), a.xact_start, a.state
  FROM last, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
   AND l.classid::bigint = '__schema__.events'::regclass::oid::bigint
 ORDER BY 1
 LIMIT 1";

type Row = (
    i64,
    i32,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
);

impl PostgresEventStore {
    /// The session whose append in flight holds the high-water mark back, `None` when no
    /// append is in flight: the store's
    /// [`EventStore::mark_holder`](crate::store::EventStore::mark_holder).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub(super) async fn read_mark_holder(&self) -> Result<Option<MarkHolder>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&qualify(MARK_HOLDER, self.schema()))
            .fetch_optional(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(row.map(
            |(position, pid, application, client, transaction_since, state)| MarkHolder {
                position: to_u64(position),
                process_id: u32::try_from(pid).unwrap_or_default(),
                application: application.filter(|name| !name.is_empty()),
                client,
                transaction_since,
                state,
            },
        ))
    }
}
