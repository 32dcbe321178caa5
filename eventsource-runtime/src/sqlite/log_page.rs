//! A page of the log read as one text that SQLite builds (`read_all`).
//!
//! sqlx hands each row of a SQLite result from its worker thread to the caller, and copies
//! each value of each row into an allocation of its own: reading the ten columns of an
//! envelope cost a catch-up twice what a loop reading three columns costs. Here SQLite
//! writes the whole page as one text (in C, in one statement), sqlx hands over one value,
//! and the page is cut into its cells, each borrowed from the text.
//!
//! Each row is written as a header and its text cells, without a separator or an escape:
//! `1,{position},{version},{schema_version},{bytes of each text cell};{the text cells}`.
//! The header opens with whether every cell holds its column's type; the text
//! cells follow one another, each as long as its byte count says. The cells are the bytes
//! the row-by-row read gets, so they need no unescaping (a first version wrote the page as
//! JSON: SQLite escaping every payload and the page read parsing it twice cost more than
//! the rows saved).
//!
//! The row-by-row read stays the reference: a page holding a row this path does not read
//! exactly as that one would (a cell of another type than its column's, JSON text that
//! does not parse, text that is not UTF-8, a header that does not add up) is read again
//! that way, so an unreadable event is reported as before, at its position, after the
//! events before it. A SQLite without `concat` or `octet_length` (older than 3.44) refuses
//! the statement, and every page is read row by row.
//!
//! Measured with `cargo bench --bench catch_up` (a rebuild of 100k events); see
//! `docs/performance.md` and, for the sessions behind it, "SQLite catch-up" in
//! `docs/history/performance-journal.md`.

use sqlx::sqlite::SqlitePool;

use super::rows::{COLUMNS, METADATA, PAYLOAD, READ_ALL, TIMESTAMP, decode_of, read_readable};
use super::{to_i64, unavailable};
use crate::event::EventEnvelope;
use crate::sql::row::{
    Cells, Column, Columns, EVENT_ID, EVENT_TYPE, POSITION, SCHEMA_VERSION, STREAM_ID, STREAM_TYPE,
    VERSION,
};
use crate::store::ReadBatch;
use crate::store::backend::ReadAll;

/// The events from `?1` on, at most `?2`, as one text: per row, in the order of positions,
/// `{typed},{position},{version},{schema_version},{bytes},...;{texts}` (see the module),
/// `NULL` when there is no such event; then the last position and the number of rows.
/// `{typed}` is 1 when every cell holds its column's type, told by comparisons (cheaper
/// than `typeof`): text sorts below any BLOB, a number below any text, a number that is not
/// an integer does not parse, and `position` is the row id.
pub(super) const READ_ALL_AS_PAGE: &str = "SELECT group_concat(concat(\
     stream_type < x'' AND stream_id < x'' AND event_id < x'' AND event_type < x'' \
     AND timestamp < x'' AND payload < x'' AND metadata < x'' \
     AND version < '' AND schema_version < '', \
     ',', position, ',', version, ',', schema_version, \
     ',', octet_length(stream_type), ',', octet_length(stream_id), \
     ',', octet_length(event_id), ',', octet_length(event_type), \
     ',', octet_length(timestamp), ',', octet_length(payload), \
     ',', octet_length(metadata), ';', \
     stream_type, stream_id, event_id, event_type, timestamp, payload, metadata), ''), \
     max(position), count(*) \
     FROM (SELECT * FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2)";

/// The integer cells of a row, in the order its header gives them.
const INTEGERS: [Column; 3] = [POSITION, VERSION, SCHEMA_VERSION];
/// The text cells of a row, in the order it gives them.
const TEXTS: [Column; 7] = [
    STREAM_TYPE,
    STREAM_ID,
    EVENT_ID,
    EVENT_TYPE,
    TIMESTAMP,
    PAYLOAD,
    METADATA,
];

/// A page as SQLite wrote it: its text, its last position and how many rows it holds.
pub(super) struct Written {
    text: Option<String>,
    last: Option<i64>,
    rows: i64,
}

impl Written {
    /// Where the page after this one starts, when this one is full (`limit` rows).
    pub(super) fn next_after_full(&self, limit: usize) -> Option<u64> {
        let full = usize::try_from(self.rows).is_ok_and(|rows| rows >= limit);
        let last = u64::try_from(self.last?).ok()?;
        full.then(|| last.saturating_add(1))
    }
}

/// Reads up to `limit` events from `from_position` on as one page, or row by row when the
/// page holds a row this path does not read exactly as that one would.
pub(super) async fn read_page(pool: SqlitePool, from_position: u64, limit: usize) -> ReadAll {
    let written = write_page(&pool, from_position, limit).await;
    read_written(pool, written, from_position, limit).await
}

/// Has SQLite write the page of up to `limit` events from `from_position` on.
pub(super) async fn write_page(
    pool: &SqlitePool,
    from_position: u64,
    limit: usize,
) -> Result<Written, sqlx::Error> {
    let (text, last, rows) = sqlx::query_as(READ_ALL_AS_PAGE)
        .bind(to_i64(from_position))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(pool)
        .await?;
    Ok(Written { text, last, rows })
}

/// The events of a page SQLite wrote (`written`, from `from_position`, `limit` at most),
/// or of the rows, read again one by one, when the page holds a row this path does not
/// read exactly as the row-by-row read would.
pub(super) async fn read_written(
    pool: SqlitePool,
    written: Result<Written, sqlx::Error>,
    from_position: u64,
    limit: usize,
) -> ReadAll {
    match written {
        Ok(written) => {
            if let Some(events) = decode_page(written.text.as_deref().unwrap_or_default()) {
                return Ok(ReadBatch::new(events, limit));
            }
        }
        // SQLite refused the statement (no `concat` in an older SQLite), or the page is not
        // text (a cell held invalid UTF-8): the rows say which.
        Err(
            sqlx::Error::Database(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_),
        ) => {}
        Err(error) => return Err(unavailable(error)),
    }
    let query = sqlx::query(READ_ALL)
        .bind(to_i64(from_position))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    read_readable(pool, query, limit).await
}

/// The envelopes of a page, or `None` when a row of it is not one this path reads exactly
/// as the row-by-row read does.
pub(crate) fn decode_page(page: &str) -> Option<Vec<EventEnvelope>> {
    let mut rest = page;
    let mut events = Vec::new();
    let mut previous = None;
    while !rest.is_empty() {
        let (row, after) = PageRow::cut(rest)?;
        rest = after;
        let envelope = decode_of(row, None).ok()?;
        // In the order of positions, as the `SELECT` gives them.
        if previous.is_some_and(|previous| previous >= envelope.position) {
            return None;
        }
        previous = Some(envelope.position);
        events.push(envelope);
    }
    Some(events)
}

/// A cell of a page's row.
#[derive(Clone, Copy)]
enum Cell<'p> {
    Integer(i64),
    Text(&'p str),
}

/// One row of a page: its cells, in the order of `COLUMNS`.
#[derive(Clone, Copy)]
struct PageRow<'p>([Cell<'p>; COLUMNS]);

impl<'p> PageRow<'p> {
    /// The row at the start of `page` and the text after it; `None` when its cells are not
    /// all of their columns' types or its header does not add up.
    fn cut(page: &'p str) -> Option<(Self, &'p str)> {
        let mut header = Header {
            rest: page.as_bytes(),
            ended: None,
        };
        if header.field()? != b"1" {
            return None;
        }
        let mut cells = [Cell::Integer(0); COLUMNS];
        for column in INTEGERS {
            *cells.get_mut(column.0)? = Cell::Integer(header.integer()?);
        }
        let mut lengths = [0; TEXTS.len()];
        for length in &mut lengths {
            *length = usize::try_from(header.integer()?).ok()?;
        }
        // The header ends with `;`, the texts follow.
        let mut texts = page.get(page.len() - header.rest.len()..)?;
        if header.ended != Some(b';') {
            return None;
        }
        for (column, bytes) in TEXTS.into_iter().zip(lengths) {
            *cells.get_mut(column.0)? = Cell::Text(texts.get(..bytes)?);
            texts = texts.get(bytes..)?;
        }
        Some((Self(cells), texts))
    }

    fn cell(&self, column: Column) -> Result<Cell<'p>, sqlx::Error> {
        self.0
            .get(column.0)
            .copied()
            .ok_or_else(|| sqlx::Error::ColumnIndexOutOfBounds {
                index: column.0,
                len: COLUMNS,
            })
    }
}

/// A row's header being read: what follows the fields read, and the byte that ended the
/// last of them (`,`, or `;` for the header's end).
struct Header<'p> {
    rest: &'p [u8],
    ended: Option<u8>,
}

impl<'p> Header<'p> {
    /// The next field, up to its `,` or `;`; `None` past the header's end.
    fn field(&mut self) -> Option<&'p [u8]> {
        if self.ended == Some(b';') {
            return None;
        }
        let end = self.rest.iter().position(|&b| b == b',' || b == b';')?;
        let (field, rest) = self.rest.split_at(end);
        let (&ended, rest) = rest.split_first()?;
        self.ended = Some(ended);
        self.rest = rest;
        Some(field)
    }

    /// The next field as the integer it writes in decimal.
    fn integer(&mut self) -> Option<i64> {
        std::str::from_utf8(self.field()?).ok()?.parse().ok()
    }
}

/// A cell of another type than asked (not reached: the header says every cell is of its
/// column's type).
fn mismatch(column: Column) -> sqlx::Error {
    sqlx::Error::Decode(format!("{} is not of its column's type", column.1).into())
}

impl<'p> Cells<'p> for PageRow<'p> {
    fn int(&self, _: Columns, column: Column) -> Result<i64, sqlx::Error> {
        match self.cell(column)? {
            Cell::Integer(value) => Ok(value),
            Cell::Text(_) => Err(mismatch(column)),
        }
    }

    fn text(&self, _: Columns, column: Column) -> Result<&'p str, sqlx::Error> {
        match self.cell(column)? {
            Cell::Text(text) => Ok(text),
            Cell::Integer(_) => Err(mismatch(column)),
        }
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
        let written = write_page(store.pool(), 0, 100).await.ok()?;
        written.text
    }

    /// What the row-by-row read gives.
    async fn by_rows(store: &SqliteEventStore) -> ReadAll {
        let query = sqlx::query(crate::sqlite::rows::READ_ALL)
            .bind(0_i64)
            .bind(100_i64);
        read_readable(store.pool().clone(), query, 100).await
    }

    #[tokio::test]
    async fn a_page_holds_what_the_rows_hold() {
        let order = StreamId::new("Order", "o-1");
        // Characters JSON escapes and the page's header uses, read as they are.
        let other = StreamId::new("Invoice", "i-\"é\"-1;2,3\\");
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

    #[test]
    fn a_header_that_does_not_add_up_leaves_the_page_to_the_rows() {
        const ID: &str = "0190c4b4-2f5a-7cc3-9a41-5d2f4b8e9a10";
        let texts = ["Tï", "s", ID, "E", "2024-05-01T12:00:00Z", "{}", "{}"];
        let row = |header: &str| format!("{header};{}", texts.concat());
        let lengths = texts.map(|text| text.len().to_string()).join(",");
        let read = decode_page(&row(&format!("1,7,2,1,{lengths}"))).expect("a row");
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].position, read[0].version), (7, 2));
        assert_eq!(read[0].stream.aggregate_type(), "Tï");
        for header in [
            // Another type than a column's.
            format!("0,7,2,1,{lengths}"),
            // A text a byte longer, one cut inside a character, one a byte shorter (a byte
            // left after the row).
            format!("1,7,2,1,4,{}", &lengths[2..]),
            format!("1,7,2,1,2,{}", &lengths[2..]),
            format!("1,7,2,1,3,0,{}", &lengths[4..]),
            // A field missing, one too many, one not a number, a negative length.
            format!("1,7,2,{lengths}"),
            format!("1,7,2,1,{lengths},0"),
            format!("1,7,x,1,{lengths}"),
            format!("1,7,2,1,-1,{}", &lengths[2..]),
        ] {
            assert!(decode_page(&row(&header)).is_none(), "{header}");
        }
        // No header's end.
        assert!(decode_page(&format!("1,7,2,1,{lengths}")).is_none());
    }

    #[tokio::test]
    async fn rows_the_page_cannot_read_exactly_are_read_row_by_row() {
        let stream = StreamId::new("Counter", "c");
        for damage in [
            // Not JSON (unreadable, by the rows), and not text.
            "payload = '{total: 1}'",
            "metadata = 12",
            // A BLOB where JSON is kept, and where text is.
            "payload = x'00ff'",
            "stream_type = x'00'",
            // Text that is not UTF-8 (the page is not text).
            "stream_id = CAST(x'ff' AS TEXT)",
            // Another type than the column's.
            "version = 'two'",
            "schema_version = 1.5",
            "schema_version = -1",
            // A BLOB of digits where an integer is kept.
            "version = x'35'",
            "schema_version = x'31'",
            // A BLOB of readable text in each other text column.
            "stream_id = CAST('c' AS BLOB)",
            "event_id = CAST(event_id AS BLOB)",
            "event_type = CAST('Counted' AS BLOB)",
            "timestamp = CAST(timestamp AS BLOB)",
            "metadata = CAST('{}' AS BLOB)",
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
