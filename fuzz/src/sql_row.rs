//! An events-table row as the SQL stores read it: the first line names the store
//! (`sqlite` or `postgres`, then ` load` for a row of a load, whose stream is known), each
//! next line one cell, in the order of the store's `SELECT` (see `__fuzz::sql`):
//!
//! - `null`; `i 42` (bigint); `i4 7` (integer); `u <uuid>`;
//! - `t text` (the rest of the line), `j "a JSON string"` (text with any character);
//! - `d 2024-05-01T12:00:00.123456Z` or `d @1714564800123456` (a timestamp, in microseconds
//!   since the epoch).
//!
//! A cell that does not parse is `null`. Checked: an unreadable row is `Corrupt`, never a
//! panic; a readable one reads its metadata and trace context, and travels as a relay
//! publishes it (`bus::wire::encode`, then `decode`) into the same event; a SQLite row that
//! `read_all` reads within a page is read there as the row-by-row read reads it.

use chrono::{DateTime, Utc};
use eventsource_runtime::__fuzz::sql::{self, Cell};
use eventsource_runtime::bus::wire;
use eventsource_runtime::event::StreamId;
use eventsource_runtime::store::StoreError;
use eventsource_runtime::telemetry::propagation;
use serde_json::value::RawValue;

/// Where PostgreSQL's rows keep their payload and metadata (`jsonb`).
const POSTGRES_JSON: [usize; 2] = [9, 10];

/// Runs the checks on one input; a failed one panics.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let Some(store) = lines.next() else {
        return;
    };
    let (store, load) = match store.strip_suffix(" load") {
        Some(store) => (store, true),
        None => (store, false),
    };
    let cells: Vec<Cell> = lines.map(cell).collect();
    let known = StreamId::new("Order", "o-1");
    let known = load.then_some(&known);
    let read = match store {
        "sqlite" => {
            let read = sql::sqlite_row(&cells, known);
            if !load && let Some(paged) = sql::sqlite_page_row(&cells) {
                let read = read.as_ref().expect("a row read in a page is readable");
                assert_eq!(format!("{paged:?}"), format!("{read:?}"));
            }
            read
        }
        "postgres" => {
            // The database holds valid JSON there (`jsonb`), and the store trusts it.
            for at in POSTGRES_JSON {
                if let Some(Cell::Text(json)) = cells.get(at)
                    && serde_json::from_str::<&RawValue>(json).is_err()
                {
                    return;
                }
            }
            sql::postgres_row(&cells, known)
        }
        _ => return,
    };
    let event = match read {
        Ok(event) => event,
        Err(StoreError::Corrupt { .. }) => return,
        Err(other) => panic!("not Corrupt: {other:?}"),
    };
    if let Some(known) = known {
        assert_eq!(&event.stream, known);
    }

    // What readers do with it.
    let entries = event.metadata.iter().count();
    assert_eq!(
        event.metadata.is_empty(),
        entries == 0,
        "{:?}",
        event.metadata
    );
    let _ = propagation::stored_span_context(&event.metadata);
    let _ = event.payload.to_value();

    // A relay publishes it: the consumer reads the same event.
    let body = wire::encode(&event).expect("a stored event encodes");
    let received = wire::decode(&body).expect("a published event decodes");
    assert_eq!(received, event);
}

/// One cell line.
fn cell(line: &str) -> Cell {
    let (kind, value) = line.split_once(' ').unwrap_or((line, ""));
    let parsed = match kind {
        "i" => value.parse().ok().map(Cell::Int),
        "i4" => value.parse().ok().map(Cell::Int4),
        "u" => value.parse().ok().map(Cell::Uuid),
        "t" => Some(Cell::Text(value.to_owned())),
        "j" => serde_json::from_str(value).ok().map(Cell::Text),
        "d" => timestamp(value).map(Cell::Timestamp),
        _ => None,
    };
    parsed.unwrap_or(Cell::Null)
}

fn timestamp(value: &str) -> Option<DateTime<Utc>> {
    match value.strip_prefix('@') {
        Some(micros) => DateTime::from_timestamp_micros(micros.parse().ok()?),
        None => DateTime::parse_from_rfc3339(value)
            .ok()
            .map(|time| time.to_utc()),
    }
}
