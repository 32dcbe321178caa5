//! The SQL stores' decoding of an events-table row, fed values instead of a database's row.
//!
//! The columns, in the order of the stores' `SELECT`s:
//!
//! | # | SQLite ([`sqlite_row`]) | PostgreSQL ([`postgres_row`]) |
//! |---|---|---|
//! | 0 | `position` (int) | `position` (int) |
//! | 1 | `stream_type` (text) | `stream_type` (text) |
//! | 2 | `stream_id` (text) | `stream_id` (text) |
//! | 3 | `version` (int) | `version` (int) |
//! | 4 | `event_id` (text) | `event_id` (uuid) |
//! | 5 | `event_type` (text) | `event_type` (text) |
//! | 6 | `schema_version` (int) | `schema_version` (int) |
//! | 7 | `timestamp` (text, RFC 3339) | `recorded_at` (timestamp) |
//! | 8 | `payload` (text) | `recorded_at_nanos` (int4) |
//! | 9 | `metadata` (text) | `payload` (text, as `jsonb` writes it) |
//! | 10 | | `metadata` (text, as `jsonb` writes it) |

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{EventEnvelope, StreamId};
use crate::sql::row::{Cells, Column, Columns};
use crate::store::StoreError;

/// One cell of a row as the database's driver reads it. A cell read as another type than
/// its own is an error, as sqlx's type check makes it; so is [`Cell::Null`] (PostgreSQL's
/// driver refuses a `NULL`; SQLite's reads it as `0` or `""`, which are cells of their own).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// `NULL`, or a value the driver cannot read as any of these (a BLOB, a REAL).
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A 32-bit integer.
    Int4(i32),
    /// Text.
    Text(String),
    /// A UUID.
    Uuid(Uuid),
    /// A timestamp.
    Timestamp(DateTime<Utc>),
}

/// A row of given cells.
struct Given<'r>(&'r [Cell]);

impl<'r> Given<'r> {
    /// The cell at `column`, or sqlx's error for a missing one.
    fn cell(&self, column: Column) -> Result<&'r Cell, sqlx::Error> {
        self.0
            .get(column.0)
            .ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                index: column.0,
                len: self.0.len(),
            })
    }
}

/// sqlx's error for `cell` read as `wanted`.
fn mismatch(column: Column, cell: &Cell, wanted: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: format!("{:?}", column.0),
        source: format!("a {wanted} cannot be read from {cell:?}").into(),
    }
}

impl<'r> Cells<'r> for Given<'r> {
    fn int(&self, _: Columns, column: Column) -> Result<i64, sqlx::Error> {
        match self.cell(column)? {
            Cell::Int(value) => Ok(*value),
            other => Err(mismatch(column, other, "bigint")),
        }
    }

    fn text(&self, _: Columns, column: Column) -> Result<&'r str, sqlx::Error> {
        match self.cell(column)? {
            Cell::Text(text) => Ok(text),
            other => Err(mismatch(column, other, "text")),
        }
    }

    fn int4(&self, _: Columns, column: Column) -> Result<i32, sqlx::Error> {
        match self.cell(column)? {
            Cell::Int4(value) => Ok(*value),
            other => Err(mismatch(column, other, "integer")),
        }
    }

    fn uuid(&self, _: Columns, column: Column) -> Result<Uuid, sqlx::Error> {
        match self.cell(column)? {
            Cell::Uuid(value) => Ok(*value),
            other => Err(mismatch(column, other, "uuid")),
        }
    }

    fn timestamp(&self, _: Columns, column: Column) -> Result<DateTime<Utc>, sqlx::Error> {
        match self.cell(column)? {
            Cell::Timestamp(value) => Ok(*value),
            other => Err(mismatch(column, other, "timestamptz")),
        }
    }
}

/// The event the SQLite store reads from a row of `cells` (of the stream `known`, as a
/// load's rows, or `None`, as `read_all`'s).
///
/// # Errors
/// [`StoreError::Corrupt`] for an unreadable row, as the store.
#[cfg(feature = "sqlite")]
pub fn sqlite_row(cells: &[Cell], known: Option<&StreamId>) -> Result<EventEnvelope, StoreError> {
    crate::sqlite::decode_row(Given(cells), known)
}

/// The event the SQLite store's `read_all` takes from a row of `cells` when it reads the row
/// within a page (`sqlite/page.rs`: the cells as its `concat` writes them), or `None` when
/// that read leaves the row to the row-by-row one ([`sqlite_row`]), which then must read
/// the same event.
#[cfg(feature = "sqlite")]
pub fn sqlite_page_row(cells: &[Cell]) -> Option<EventEnvelope> {
    /// The columns holding integers (position, version, schema version); the others hold
    /// text.
    const INTEGERS: [usize; 3] = [0, 3, 6];
    const TEXTS: [usize; 7] = [1, 2, 4, 5, 7, 8, 9];
    let typed = cells.len() == INTEGERS.len() + TEXTS.len()
        && cells.iter().enumerate().all(|(column, cell)| match cell {
            Cell::Int(_) => INTEGERS.contains(&column),
            Cell::Text(_) => TEXTS.contains(&column),
            _ => false,
        });
    // What `concat` writes of a cell: an integer in decimal, text as it is, nothing for
    // NULL or a missing column.
    let written = |column: usize| match cells.get(column) {
        None | Some(Cell::Null) => Some(String::new()),
        Some(Cell::Int(value)) => Some(value.to_string()),
        Some(Cell::Text(text)) => Some(text.clone()),
        // Not values SQLite holds.
        Some(Cell::Int4(_) | Cell::Uuid(_) | Cell::Timestamp(_)) => None,
    };
    let mut page = String::from(if typed { "1" } else { "0" });
    for column in INTEGERS {
        page.push(',');
        page.push_str(&written(column)?);
    }
    let mut texts = String::new();
    for column in TEXTS {
        let text = written(column)?;
        page.push(',');
        // `octet_length` of NULL is NULL, which `concat` leaves out.
        if matches!(cells.get(column), Some(Cell::Int(_) | Cell::Text(_))) {
            page.push_str(&text.len().to_string());
        }
        texts.push_str(&text);
    }
    page.push(';');
    page.push_str(&texts);
    crate::sqlite::decode_page(&page)?.pop()
}

/// The event the PostgreSQL store reads from a row of `cells` (of the stream `known`, as a
/// load's rows, or `None`, as `read_all`'s). The database enforces the columns' types, so
/// the payload and metadata are taken as valid JSON (`jsonb`'s), unchecked, as the store
/// takes them: give it valid JSON there.
///
/// # Errors
/// [`StoreError::Corrupt`] for an unreadable row, as the store.
#[cfg(feature = "postgres")]
pub fn postgres_row(cells: &[Cell], known: Option<&StreamId>) -> Result<EventEnvelope, StoreError> {
    crate::postgres::decode_row(Given(cells), known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Metadata;

    fn shared(event_id: Cell) -> Vec<Cell> {
        vec![
            Cell::Int(42),
            Cell::Text("Order".into()),
            Cell::Text("o-1".into()),
            Cell::Int(3),
            event_id,
            Cell::Text("OrderPlaced".into()),
            Cell::Int(1),
        ]
    }

    const ID: &str = "0190c4b4-2f5a-7cc3-9a41-5d2f4b8e9a10";
    const METADATA: &str = r#"{"correlation_id":"c-1"}"#;

    fn check(event: &EventEnvelope) {
        assert_eq!(event.stream, StreamId::new("Order", "o-1"));
        assert_eq!((event.version, event.position), (3, 42));
        assert_eq!(event.event_id, Uuid::parse_str(ID).unwrap());
        assert_eq!(
            (&*event.event_type, event.schema_version),
            ("OrderPlaced", 1)
        );
        assert_eq!(event.payload, serde_json::json!({ "total": 12 }));
        assert_eq!(event.metadata, Metadata::from_json(METADATA).unwrap());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn a_sqlite_row_of_given_cells_decodes_as_the_store_decodes_it() {
        let mut cells = shared(Cell::Text(ID.into()));
        cells.extend([
            Cell::Text("2024-05-01T12:00:00.123456789Z".into()),
            Cell::Text(r#" {"total": 12} "#.into()),
            Cell::Text(METADATA.into()),
        ]);
        let event = sqlite_row(&cells, None).unwrap();
        check(&event);
        assert_eq!(event.timestamp.timestamp_subsec_nanos(), 123_456_789);
        // Within a page, the same event.
        let paged = sqlite_page_row(&cells).expect("read within a page");
        assert_eq!(format!("{paged:?}"), format!("{event:?}"));

        cells[8] = Cell::Text("{".into());
        assert!(sqlite_page_row(&cells).is_none(), "left to the rows");
        let Err(StoreError::Corrupt {
            reason, position, ..
        }) = sqlite_row(&cells, None)
        else {
            panic!("not JSON: corrupt");
        };
        assert!(reason.starts_with("payload: "), "{reason}");
        assert_eq!(position, 42);
        cells.truncate(9);
        assert!(matches!(
            sqlite_row(&cells, None),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(sqlite_page_row(&cells).is_none());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_postgres_row_of_given_cells_decodes_as_the_store_decodes_it() {
        let micros = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z").unwrap();
        let mut cells = shared(Cell::Uuid(Uuid::parse_str(ID).unwrap()));
        cells.extend([
            Cell::Timestamp(micros.to_utc()),
            Cell::Int4(789),
            Cell::Text(r#"{"total": 12}"#.into()),
            Cell::Text(METADATA.into()),
        ]);
        let event = postgres_row(&cells, None).unwrap();
        check(&event);
        assert_eq!(event.timestamp.timestamp_subsec_nanos(), 123_456_789);

        cells[8] = Cell::Int4(1000);
        let Err(StoreError::Corrupt { reason, .. }) = postgres_row(&cells, None) else {
            panic!("nanoseconds out of range: corrupt");
        };
        assert!(reason.starts_with("recorded_at_nanos: "), "{reason}");
    }
}
