//! The PostgreSQL store's [`StreamReader`]: a stream's pages read from one query, a window
//! of pages at a time, instead of one query per page. The rows of the next page arrive
//! while the caller applies the last one, and no page waits for a query of its own.

use futures_util::TryStreamExt as _;

use super::rows::decode_of;
use super::window::{Rows, has_spare_connection};
use super::{PostgresEventStore, to_i64, unavailable};
use crate::event::{EventEnvelope, StreamId};
use crate::store::backend::{Backend, Events, check_stream_unless_backend_does, operation};
use crate::store::stream_reader::page_after;
use crate::store::{StoreError, StreamReader, instrument};

/// How many pages one windowed query reads at most, as for batches: its own cost is spread
/// thin, and a reader dropped in the middle of one leaves little for its connection to
/// drain.
const WINDOW_PAGES: usize = 16;

/// See the [module](self).
pub(super) struct PostgresStreamReader<'a> {
    store: &'a PostgresEventStore,
    stream: StreamId,
    /// Where the next page starts; `None` once the stream's end was read.
    next: Option<u64>,
    page_size: usize,
    /// The query streaming the stream's rows from `next` on.
    rows: Option<Rows<'a>>,
    /// The rows the open query may still return (its `LIMIT` less those read).
    window_left: usize,
}

impl<'a> PostgresStreamReader<'a> {
    pub(super) fn new(
        store: &'a PostgresEventStore,
        stream: &StreamId,
        from_version: u64,
        page_size: usize,
    ) -> Self {
        Self {
            store,
            stream: stream.clone(),
            next: Some(from_version),
            page_size: page_size.max(1),
            rows: None,
            window_left: 0,
        }
    }

    /// Starts a query of up to a window of rows from version `from` on, when the pool has
    /// a connection to spare beside it (a reader never takes the last one).
    fn open(&mut self, from: u64) -> bool {
        let pool = self.store.pool();
        if !has_spare_connection(pool) {
            return false;
        }
        let window = self.page_size.saturating_mul(WINDOW_PAGES);
        let rows = sqlx::query(self.store.load_page_query())
            .bind(self.stream.aggregate_type().to_owned())
            .bind(self.stream.aggregate_id().to_owned())
            .bind(to_i64(from))
            .bind(i64::try_from(window).unwrap_or(i64::MAX))
            .fetch(pool);
        self.rows = Some(rows);
        self.window_left = window;
        true
    }

    /// The page from version `from` on: from windowed queries while the pool has a
    /// connection to spare, else as `load_page` reads it.
    async fn read(&mut self, from: u64) -> Events {
        check_stream_unless_backend_does::<PostgresEventStore>(&self.stream)?;
        let limit = self.page_size;
        let mut events: Vec<EventEnvelope> = Vec::with_capacity(limit.min(1024));
        loop {
            let start = events.last().map_or(from, |last| last.version + 1);
            let fresh = self.rows.is_none();
            if fresh && !self.open(start) {
                let rest = limit - events.len();
                let more = self
                    .store
                    .load_events_page(&self.stream, start, rest)
                    .await?;
                events.extend(more);
                return Ok(events);
            }
            let Some(rows) = self.rows.as_mut() else {
                return Ok(events);
            };
            while events.len() < limit {
                let row = match rows.try_next().await {
                    Ok(row) => row,
                    Err(error) => {
                        self.rows = None;
                        return Err(unavailable(error));
                    }
                };
                let Some(row) = row else { break };
                self.window_left = self.window_left.saturating_sub(1);
                match decode_of(&row, Some(&self.stream)) {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        self.rows = None;
                        return Err(error);
                    }
                }
            }
            if events.len() == limit {
                return Ok(events);
            }
            // The query is read: the stream's end, unless it stopped at its window.
            self.rows = None;
            if self.window_left > 0 {
                return Ok(events);
            }
        }
    }
}

#[async_trait::async_trait]
impl StreamReader for PostgresStreamReader<'_> {
    async fn next_page(&mut self) -> Result<Vec<EventEnvelope>, StoreError> {
        let Some(from) = self.next else {
            return Ok(Vec::new());
        };
        let store = self.store;
        let operation = operation(store, "load");
        let stream = self.stream.clone();
        let read = store.answered(self.read(from));
        let page = instrument::load(store.telemetry(), &stream, from, operation, read).await;
        match &page {
            Ok(page) => {
                self.next = page_after(page, self.page_size);
            }
            Err(_) => self.rows = None,
        }
        page
    }
}
