//! Rows of the `events` table read back: a stored row decoded into an event (anything
//! unreadable is `Corrupt`, never a panic), for the store's reads (`events`) and the log's
//! pages read as one text (`log_page`).

use futures_util::TryStreamExt as _;
use sqlx::Sqlite;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use super::{parse_timestamp, unavailable};
use crate::event::{EventEnvelope, StreamId};
use crate::sql::row::{Cells, Column, Columns, EVENT_ID, StoredRow, readable_prefix};
use crate::store::StoreError;
use crate::store::backend::{Events, ReadAll};

/// The log from a position on (`read_all`), row by row: the reference every faster read of
/// the log is checked against.
pub(super) const READ_ALL: &str = "SELECT position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, timestamp, payload, metadata FROM events \
     WHERE position >= ?1 ORDER BY position LIMIT ?2";

/// SQLite's own columns of the store's `SELECT`s (`LOAD`, `READ_ALL`), after the shared ones.
pub(super) const TIMESTAMP: Column = Column(7, "timestamp");
pub(super) const PAYLOAD: Column = Column(8, "payload");
pub(super) const METADATA: Column = Column(9, "metadata");
/// How many columns the `SELECT`s read.
pub(super) const COLUMNS: usize = 10;

/// Reads one stored event; anything unreadable is [`StoreError::Corrupt`], never a panic.
/// Payload and metadata are plain text here: checked once.
pub(super) fn decode(row: &SqliteRow) -> Result<EventEnvelope, StoreError> {
    decode_of(row, None)
}

/// [`decode`] of a row of the stream `known` (a load's), sharing its id. (Any [`Cells`]: the
/// fuzz targets give it values of their own.)
pub(crate) fn decode_of<'r>(
    row: impl Cells<'r>,
    known: Option<&StreamId>,
) -> Result<EventEnvelope, StoreError> {
    StoredRow::new(row, Columns::Untyped, known).envelope([PAYLOAD, METADATA], |stored| {
        let event_id = stored.text(EVENT_ID)?;
        let event_id = Uuid::parse_str(event_id).map_err(|e| stored.corrupt(EVENT_ID.1, &e))?;
        let timestamp = stored.text(TIMESTAMP)?;
        let timestamp = parse_timestamp(timestamp).map_err(|e| stored.corrupt(TIMESTAMP.1, &e))?;
        Ok((event_id, timestamp))
    })
}

/// A query with its parameters bound.
pub(super) type Bound = sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments<'static>>;

/// Runs `query` and decodes every row as it arrives, so that the rows are never held all
/// at once beside their events (`load`: any unreadable row is the error). The rows of
/// `known` (a load's stream) share its id.
pub(super) async fn read_rows(pool: SqlitePool, query: Bound, known: Option<StreamId>) -> Events {
    let mut rows = query.fetch(&pool);
    let mut events = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(unavailable)? {
        events.push(decode_of(&row, known.as_ref())?);
    }
    Ok(events)
}

/// Runs `query` (`limit` rows at most) and decodes the rows up to the first unreadable one
/// (`read_all`).
pub(super) async fn read_readable(pool: SqlitePool, query: Bound, limit: usize) -> ReadAll {
    let rows = query.fetch_all(&pool).await.map_err(unavailable)?;
    readable_prefix(rows.iter().map(decode), limit)
}
