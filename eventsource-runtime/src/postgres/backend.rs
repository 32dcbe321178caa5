//! The PostgreSQL event store as the runtime's stores answer: each operation of the
//! [`EventStore`](crate::store::EventStore) contract on its SQL, every round trip bounded by
//! the store's `answer_timeout`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::TryStreamExt as _;
use sqlx::postgres::PgPool;

use super::log_reader::PostgresLogReader;
use super::rows::{decode, decode_of};
use super::stream_reader::PostgresStreamReader;
use super::{PostgresEventStore, liveness, to_i64, to_u64, unavailable};
use crate::event::StreamId;
use crate::sql::row::readable_prefix;
use crate::store::backend::{Append, Appended, Backend, Events, ReadAll};
use crate::store::{
    AppendSignal, LogReader, MarkHolder, Segment, StoreError, StoreTelemetry, StreamReader,
    WithStoreTelemetry,
};

/// Runs a stream read and decodes every row as it arrives, so that the rows are never held
/// all at once beside their events (any unreadable row is the error).
async fn read_rows(
    pool: &PgPool,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    known: Option<&StreamId>,
) -> Events {
    let mut rows = query.fetch(pool);
    let mut events = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(unavailable)? {
        events.push(decode_of(&row, known)?);
    }
    Ok(events)
}

impl WithStoreTelemetry for PostgresEventStore {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut StoreTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

impl Backend for PostgresEventStore {
    fn telemetry(&self) -> &StoreTelemetry {
        &self.telemetry
    }

    fn query_text(&self, operation: &'static str) -> Option<&str> {
        match operation {
            "append" => Some(&self.sql.append),
            "load" => Some(&self.sql.load),
            "read_all" => Some(&self.sql.read_all),
            "events_by_correlation" => Some(&self.sql.by_correlation),
            _ => None,
        }
    }

    async fn append_events(&self, append: Append<'_>) -> Appended {
        self.append_rows(None, append.stream, append.expected, append.events)
            .await
    }

    async fn load_events(&self, stream: &StreamId, from_version: u64) -> Events {
        let query = sqlx::query(&self.sql.load)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .bind(to_i64(from_version));
        read_rows(&self.pool, query, Some(stream)).await
    }

    async fn load_events_page(&self, stream: &StreamId, from_version: u64, limit: usize) -> Events {
        let query = sqlx::query(&self.sql.load_page)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .bind(to_i64(from_version))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        read_rows(&self.pool, query, Some(stream)).await
    }

    async fn read_events(&self, from_position: u64, limit: usize) -> ReadAll {
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if self.known_mark.load(Ordering::Acquire) == 0 {
            // This store's first read: the mark first (no table read), so that a reader far
            // behind reads only the positions it needs, as below; the function would read
            // every row up to the mark on a table without statistics (`window::range_end`).
            self.learn_mark().await;
        }
        let known_mark = self.known_mark.load(Ordering::Acquire);
        let below_known = u64::try_from(limit)
            .ok()
            .and_then(|limit| from_position.checked_add(limit))
            .is_some_and(|end| end <= known_mark);
        if below_known {
            // A reader catching up: no new mark, no function call, a plain keyset read of
            // the positions it needs (`window::range_end`), then of the rest below the mark
            // when some were missing.
            let read_below = |from: u64, until: u64, limit: usize| {
                sqlx::query(&self.sql.read_below)
                    .bind(to_i64(from))
                    .bind(to_i64(until))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
            };
            let until = super::window::range_end(from_position, limit, known_mark);
            let mut rows = read_below(from_position, until, limit)
                .await
                .map_err(unavailable)?;
            if rows.len() < limit && until < known_mark {
                let rest = read_below(until, known_mark, limit - rows.len()).await;
                rows.extend(rest.map_err(unavailable)?);
            }
            return readable_prefix(rows.iter().map(decode), limit);
        }
        let rows = sqlx::query(&self.sql.read_all)
            .bind(to_i64(from_position))
            .bind(sql_limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        if rows.len() >= limit && limit > 1 {
            // A full batch: the reader is catching up; the batches that follow can be read
            // below the mark as it is now.
            self.learn_mark().await;
        }
        readable_prefix(rows.iter().map(decode), limit)
    }

    const READS_SEGMENTS: bool = true;

    async fn read_segment_events(
        &self,
        segment: Segment,
        from_position: u64,
        limit: usize,
    ) -> ReadAll {
        self.segment_events(segment, from_position, limit).await
    }

    async fn stream_segment(&self, stream: &StreamId, count: u32) -> Result<Segment, StoreError> {
        self.segment_holding(stream, count).await
    }

    async fn prepare_segment_reads(&self, count: u32) -> Result<(), StoreError> {
        self.create_segment_index(count).await
    }

    async fn correlated_events(&self, correlation_id: &str) -> Events {
        let query = sqlx::query(&self.sql.by_correlation).bind(correlation_id);
        let rows = query.fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter().map(decode).collect()
    }

    async fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: i64 = sqlx::query_scalar(&self.sql.version)
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(to_u64(version))
    }

    fn signal(&self) -> Option<AppendSignal> {
        Some(self.signal.subscribe(&self.pool))
    }

    fn answered<T: Send, F: Future<Output = Result<T, StoreError>> + Send>(
        &self,
        call: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send {
        liveness::answered(self.answer_timeout, call)
    }

    async fn holder(&self) -> Result<Option<MarkHolder>, StoreError> {
        self.read_mark_holder().await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let newest: i64 = sqlx::query_scalar(&self.sql.max_position)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(to_u64(newest))
    }

    fn page_reader(
        &self,
        stream: &StreamId,
        from_version: u64,
        page_size: usize,
    ) -> Option<Box<dyn StreamReader + '_>> {
        let pages = PostgresStreamReader::new(self, stream, from_version, page_size);
        Some(Box::new(pages))
    }

    fn batch_reader(
        &self,
        from_position: u64,
        batch_size: usize,
    ) -> Option<Box<dyn LogReader + '_>> {
        Some(Box::new(PostgresLogReader::new(
            self,
            from_position,
            batch_size,
        )))
    }
}
