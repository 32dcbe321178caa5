//! A page of the log read as one JSON text that SQLite builds (`read_all`).
//!
//! sqlx hands each row of a SQLite result from its worker thread to the caller, and copies
//! each value of each row into an allocation of its own: reading the ten columns of an
//! envelope cost a catch-up twice what a loop reading three columns costs. Here SQLite
//! writes the whole page as one JSON array of rows (in C, in one statement), sqlx hands
//! over one value, and the page is parsed once, borrowing from its text every cell that
//! holds no escaped character.
//!
//! The payload and the metadata come as JSON strings holding their text, checked as the
//! row-by-row read checks them (SQLite's own `json()` would accept JSON5 and rewrite the
//! text). The row-by-row read stays the reference: a page holding a row this path does not
//! read exactly as that one would (a cell of another type than its column's, JSON text
//! that does not parse, a BLOB, an escaped character in a text column such as the stream
//! id) is read again that way, so an unreadable event is reported as before, at its
//! position, after the events before it.
//!
//! Measured with `cargo bench --bench catch_up` (a rebuild of 100k events): 1.8-1.9x the
//! row-by-row read's speed; see `docs/performance.md`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::sqlite::SqlitePool;

use super::events::{COLUMNS, decode_of, read_readable};
use super::{to_i64, unavailable};
use crate::event::EventEnvelope;
use crate::sql::row::{Cells, Column, Columns};
use crate::store::ReadBatch;
use crate::store::backend::ReadAll;

/// The events from `?1` on, at most `?2`, as one JSON array of `[position, stream_type,
/// stream_id, version, event_id, event_type, schema_version, timestamp, payload,
/// metadata]` arrays in the order of the row-by-row `SELECT` (`COLUMNS`), each cell as
/// SQLite holds it: text as a JSON string (the payload's and the metadata's too, checked
/// here as the row-by-row read checks them), integers as numbers.
pub(super) const READ_ALL_AS_JSON: &str = "SELECT json_group_array(json_array(position, stream_type, \
     stream_id, version, event_id, event_type, schema_version, timestamp, payload, metadata)) \
     FROM (SELECT * FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2)";

/// Reads up to `limit` events from `from_position` on as one JSON page, or row by row when
/// the page holds a row this path does not read exactly as that one would.
pub(super) async fn read_page(pool: SqlitePool, from_position: u64, limit: usize) -> ReadAll {
    let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
    let page: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(READ_ALL_AS_JSON)
        .bind(to_i64(from_position))
        .bind(limit_i64)
        .fetch_one(&pool)
        .await;
    match page {
        Ok(Some(page)) => {
            if let Some(events) = decode_page(&page) {
                return Ok(ReadBatch::new(events, limit));
            }
        }
        // Not reached (`json_group_array` of no row is `[]`); read as the rows would be.
        Ok(None) => {}
        // SQLite refused to build the page (a BLOB in a column), or the page is not text
        // (a cell held invalid UTF-8): the rows say which.
        Err(
            sqlx::Error::Database(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_),
        ) => {}
        Err(error) => return Err(unavailable(error)),
    }
    let query = sqlx::query(super::events::READ_ALL)
        .bind(to_i64(from_position))
        .bind(limit_i64);
    read_readable(pool, query, limit).await
}

/// The envelopes of a page, or `None` when a row of it is not one this path reads exactly
/// as the row-by-row read does.
pub(crate) fn decode_page(page: &str) -> Option<Vec<EventEnvelope>> {
    let rows: Vec<PageRow<'_>> = serde_json::from_str(page).ok()?;
    let mut previous = None;
    rows.into_iter()
        .map(|row| {
            let envelope = decode_of(row, None).ok()?;
            // In the order of positions, as the `SELECT` gives them.
            if previous.is_some_and(|previous| previous >= envelope.position) {
                return None;
            }
            previous = Some(envelope.position);
            Some(envelope)
        })
        .collect()
}

/// One row of a page: its cells as JSON, in the order of `COLUMNS`.
#[derive(Clone, Copy, Deserialize)]
#[serde(transparent)]
struct PageRow<'p>(#[serde(borrow)] [&'p RawValue; COLUMNS]);

impl<'p> PageRow<'p> {
    fn cell(&self, column: Column) -> Result<&'p RawValue, sqlx::Error> {
        self.0
            .get(column.0)
            .copied()
            .ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                index: column.0,
                len: COLUMNS,
            })
    }
}

/// A JSON string, borrowed from the page unless it holds escapes.
#[derive(Deserialize)]
struct Text<'p>(#[serde(borrow)] Cow<'p, str>);

/// A cell this path does not read: the page goes to the row-by-row read.
fn unread(error: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// The cells' types are checked strictly: a text cell is a JSON string (without escapes
/// where it is borrowed), an integer cell a JSON integer.
impl<'p> Cells<'p> for PageRow<'p> {
    fn int(&self, _: Columns, column: Column) -> Result<i64, sqlx::Error> {
        serde_json::from_str(self.cell(column)?.get()).map_err(unread)
    }

    fn text(&self, _: Columns, column: Column) -> Result<&'p str, sqlx::Error> {
        serde_json::from_str(self.cell(column)?.get()).map_err(unread)
    }

    fn json(&self, _: Columns, column: Column) -> Result<Cow<'p, str>, sqlx::Error> {
        serde_json::from_str(self.cell(column)?.get())
            .map(|Text(text)| text)
            .map_err(unread)
    }

    fn int4(&self, _: Columns, _: Column) -> Result<i32, sqlx::Error> {
        Err(sqlx::Error::Decode("no such SQLite column".into()))
    }

    fn uuid(&self, _: Columns, _: Column) -> Result<uuid::Uuid, sqlx::Error> {
        Err(sqlx::Error::Decode("no such SQLite column".into()))
    }

    fn timestamp(
        &self,
        _: Columns,
        _: Column,
    ) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        Err(sqlx::Error::Decode("no such SQLite column".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Metadata, NewEvent, StreamId};
    use crate::sqlite::SqliteEventStore;
    use crate::store::{EventStore, ExpectedVersion};

    /// A database of its own with `events` appended, one stream each, in order.
    async fn store_with(events: Vec<(StreamId, NewEvent)>) -> SqliteEventStore {
        let store = SqliteEventStore::connect(":memory:").await.unwrap();
        store.migrate().await.unwrap();
        for (stream, event) in events {
            store
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
        }
        store
    }

    /// The page SQLite builds, as text (`None` when it refuses to build it).
    async fn page_text(store: &SqliteEventStore) -> Option<String> {
        sqlx::query_scalar(READ_ALL_AS_JSON)
            .bind(0_i64)
            .bind(100_i64)
            .fetch_one(store.pool())
            .await
            .ok()
    }

    /// What the row-by-row read gives.
    async fn by_rows(store: &SqliteEventStore) -> ReadAll {
        let query = sqlx::query(crate::sqlite::events::READ_ALL)
            .bind(0_i64)
            .bind(100_i64);
        read_readable(store.pool().clone(), query, 100).await
    }

    #[tokio::test]
    async fn a_page_holds_what_the_rows_hold() {
        let order = StreamId::new("Order", "o-1");
        let other = StreamId::new("Invoice", "i-é-1");
        let lineage = Metadata::new()
            .with("correlation_id", "6a1c3d8e-5f0b-4c2a-9e7d-1b2c3d4e5f60")
            .with("note", "with \"quotes\", a \\ and a\nnewline");
        let store = store_with(vec![
            (
                order.clone(),
                NewEvent::new(
                    "Placed",
                    1,
                    serde_json::json!({ "total": 12, "items": [1, [2, 3]] }),
                ),
            ),
            (
                other.clone(),
                NewEvent::new(
                    "Raised",
                    3,
                    serde_json::json!({ "text": "é \u{1F600} \"q\" \\ \n\t" }),
                )
                .with_metadata(lineage),
            ),
            (
                order.clone(),
                NewEvent::new(
                    "Shipped",
                    1,
                    serde_json::json!({ "big": u64::MAX, "f": 1.5e300, "n": null }),
                ),
            ),
            (order, NewEvent::new("Noted", 1, serde_json::json!([]))),
        ])
        .await;
        // JSON written by another hand, blanks and all.
        sqlx::query("UPDATE events SET payload = ' {\"spaced\" : [1,  2]}\n' WHERE position = 4")
            .execute(store.pool())
            .await
            .unwrap();

        let page = page_text(&store).await.expect("SQLite builds the page");
        let read = decode_page(&page).expect("the page path reads these rows");
        let rows = Vec::from(by_rows(&store).await.unwrap());
        assert_eq!(read.len(), 4);
        assert_eq!(format!("{read:?}"), format!("{rows:?}"));
        for (page, row) in read.iter().zip(&rows) {
            assert_eq!(page.payload.as_str(), row.payload.as_str());
            assert_eq!(page.metadata, row.metadata);
        }
        // And `read_page` gives them, from any position.
        let batch = read_page(store.pool().clone(), 2, 2).await.unwrap();
        assert_eq!(
            format!("{:?}", Vec::from(batch)),
            format!("{:?}", &rows[1..3])
        );
    }

    #[tokio::test]
    async fn rows_the_page_cannot_read_exactly_are_read_row_by_row() {
        let stream = StreamId::new("Counter", "c");
        for damage in [
            // An escaped character in a text column (read, by the rows).
            "stream_id = 'c\"1'",
            // Not JSON (unreadable, by the rows), and not text.
            "payload = '{total: 1}'",
            "metadata = 12",
            // A BLOB where JSON is kept, and where text is (SQLite refuses the page).
            "payload = x'00ff'",
            "stream_type = x'00'",
            // Text that is not UTF-8 (the page is not text).
            "stream_id = CAST(x'ff' AS TEXT)",
            // Another type than the column's.
            "version = 'two'",
            "schema_version = 1.5",
            "schema_version = -1",
        ] {
            let events = (0..4).map(|n| {
                (
                    stream.clone(),
                    NewEvent::new("Counted", 1, serde_json::json!({ "n": n })),
                )
            });
            let store = store_with(events.collect()).await;
            sqlx::query(&format!("UPDATE events SET {damage} WHERE position = 3"))
                .execute(store.pool())
                .await
                .unwrap();
            if let Some(page) = page_text(&store).await {
                assert!(
                    decode_page(&page).is_none(),
                    "{damage}: the page path read it"
                );
            }
            let paged = read_page(store.pool().clone(), 0, 100).await;
            let rows = by_rows(&store).await;
            assert_eq!(format!("{paged:?}"), format!("{rows:?}"), "{damage}");
        }
    }
}
