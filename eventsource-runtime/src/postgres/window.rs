//! What the PostgreSQL store's two readers share ([`LogReader`](crate::store::LogReader)
//! in `log_reader.rs`, [`StreamReader`](crate::store::StreamReader) in `stream_reader.rs`):
//! each reads a window of rows from one query, and bounds it so.

use std::pin::Pin;

use futures_util::Stream;
use sqlx::postgres::{PgPool, PgRow};

/// The rows of one windowed query, decoded as they arrive.
pub(super) type Rows<'a> = Pin<Box<dyn Stream<Item = Result<PgRow, sqlx::Error>> + Send + 'a>>;

/// Where a read of `count` events from `from` stops, below `mark`: the positions it needs if
/// none is missing, and no further. PostgreSQL has no statistics of a table filled since it
/// was last analyzed (a new log, a bulk load: until autovacuum comes by); it then takes a
/// range for 0.5% of the table, reads every row of it (a bitmap scan) and sorts them for the
/// first few executions of each connection. Bounded at the mark, each of those read the rest
/// of the log: a first catch-up paid a second per 100,000 events. Bounded so, it reads what
/// it returns. A range that falls short (positions missing: an aborted append) is followed
/// by the next.
pub(super) fn range_end(from: u64, count: usize, mark: u64) -> u64 {
    let count = u64::try_from(count).unwrap_or(u64::MAX);
    from.saturating_add(count).min(mark)
}

/// Whether `pool` has a connection to spare beside the one a streamed query would take:
/// two free (idle, or not yet opened) at least.
pub(super) fn has_spare_connection(pool: &PgPool) -> bool {
    let max = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
    let free = max.saturating_sub(pool.size() as usize) + pool.num_idle();
    free >= 2
}
