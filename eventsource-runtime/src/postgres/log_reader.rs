//! The PostgreSQL store's [`LogReader`]: a reader catching up reads its batches from one
//! query below the store's known high-water mark, a window of batches at a time, instead of
//! sending one query per batch. Past the mark it reads as `read_all` does.

use futures_util::TryStreamExt as _;

use super::rows::decode;
use super::window::{Rows, has_spare_connection, range_end};
use super::{PostgresEventStore, to_i64, unavailable};
use crate::event::EventEnvelope;
use crate::store::backend::{Backend as _, ReadAll, read_all_traced};
use crate::store::{BatchEnd, LogReader, ReadBatch, StoreError};

/// How many batches one windowed query reads at most: enough that its own cost (about one
/// page's) is spread thin, few enough that a reader dropped in the middle of one leaves
/// little for its connection to drain (sqlx reads the rest when the connection is next used).
const WINDOW_BATCHES: usize = 16;

/// See the [module](self).
pub(super) struct PostgresLogReader<'a> {
    store: &'a PostgresEventStore,
    /// Where the next batch starts.
    next: u64,
    batch_size: usize,
    /// The query streaming the rows from `next` on, below a known high-water mark.
    rows: Option<Rows<'a>>,
}

/// How pulling rows from a windowed query ended.
enum Pulled {
    /// The batch is full; the query may have more.
    Full,
    /// The query has no more rows.
    Ended,
    /// A row cannot be read back (`Corrupt`).
    Unreadable(StoreError),
    /// The database failed.
    Failed(StoreError),
}

impl<'a> PostgresLogReader<'a> {
    pub(super) fn new(
        store: &'a PostgresEventStore,
        from_position: u64,
        batch_size: usize,
    ) -> Self {
        Self {
            store,
            next: from_position,
            batch_size: batch_size.max(1),
            rows: None,
        }
    }

    /// Starts a query of up to a window of rows from `from` on, below the known high-water
    /// mark, when more than a batch lies below it and the pool has a connection to spare
    /// beside it (a reader never takes the last one: the runner's checkpoint saves and
    /// everyone else's work need theirs).
    fn open(&mut self, from: u64) -> bool {
        let mark = self.store.known_mark();
        let batch = u64::try_from(self.batch_size).unwrap_or(u64::MAX);
        let pool = self.store.pool();
        if mark <= from.saturating_add(batch) || !has_spare_connection(pool) {
            return false;
        }
        let window = self.batch_size.saturating_mul(WINDOW_BATCHES);
        let rows = sqlx::query(self.store.read_below_query())
            .bind(to_i64(from))
            .bind(to_i64(range_end(from, window, mark)))
            .bind(i64::try_from(window).unwrap_or(i64::MAX))
            .fetch(pool);
        self.rows = Some(rows);
        true
    }

    /// The next batch: from windowed queries while the known mark is ahead, the rest as
    /// `read_all` reads it.
    async fn read(&mut self) -> ReadAll {
        let limit = self.batch_size;
        let mut events: Vec<EventEnvelope> = Vec::with_capacity(limit.min(1024));
        loop {
            let from = after(&events, self.next);
            let fresh = self.rows.is_none();
            if fresh && !self.open(from) {
                break;
            }
            let Some(rows) = self.rows.as_mut() else {
                break;
            };
            let before = events.len();
            match pull(rows, &mut events, limit).await {
                Pulled::Full => return Ok(ReadBatch::new(events, limit)),
                // The window is read: the next one, unless this one had nothing.
                Pulled::Ended => {
                    self.rows = None;
                    if fresh && events.len() == before {
                        break;
                    }
                }
                Pulled::Unreadable(error) => {
                    self.rows = None;
                    return with_error(events, error);
                }
                Pulled::Failed(error) => {
                    self.rows = None;
                    return Err(error);
                }
            }
        }
        let from = after(&events, self.next);
        let rest = self.store.read_events(from, limit - events.len()).await;
        joined(events, rest, limit)
    }
}

/// The position after the last of `events`, or `next` while there is none.
fn after(events: &[EventEnvelope], next: u64) -> u64 {
    events.last().map_or(next, |last| last.position + 1)
}

/// Moves rows from `rows` into `events`, decoded, until `limit` events or the end.
async fn pull(rows: &mut Rows<'_>, events: &mut Vec<EventEnvelope>, limit: usize) -> Pulled {
    while events.len() < limit {
        match rows.try_next().await {
            Ok(Some(row)) => match decode(&row) {
                Ok(event) => events.push(event),
                Err(error) => return Pulled::Unreadable(error),
            },
            Ok(None) => return Pulled::Ended,
            Err(error) => return Pulled::Failed(unavailable(error)),
        }
    }
    Pulled::Full
}

/// `read_all`'s answer when the event after `events` is unreadable.
fn with_error(events: Vec<EventEnvelope>, error: StoreError) -> ReadAll {
    if events.is_empty() {
        Err(error)
    } else {
        Ok(ReadBatch::unreadable(events, error))
    }
}

/// One batch of `limit` events at most: `events`, then `rest` (read after them).
fn joined(mut events: Vec<EventEnvelope>, rest: ReadAll, limit: usize) -> ReadAll {
    if events.is_empty() {
        return rest;
    }
    match rest {
        Ok(rest) => {
            let (more, end) = rest.into_parts();
            events.extend(more);
            match end {
                BatchEnd::Unreadable(error) => Ok(ReadBatch::unreadable(events, error)),
                BatchEnd::Limit | BatchEnd::Head => Ok(ReadBatch::new(events, limit)),
            }
        }
        Err(error @ StoreError::Corrupt { .. }) => Ok(ReadBatch::unreadable(events, error)),
        // The events read are read again by the next batch, which starts before them.
        Err(error) => Err(error),
    }
}

#[async_trait::async_trait]
impl LogReader for PostgresLogReader<'_> {
    async fn next_batch(&mut self) -> Result<ReadBatch, StoreError> {
        let (store, from, limit) = (self.store, self.next, self.batch_size);
        let batch = read_all_traced(store, from, limit, store.answered(self.read())).await;
        match &batch {
            Ok(batch) => self.next = batch.next_position(from),
            Err(_) => self.rows = None,
        }
        batch
    }
}
