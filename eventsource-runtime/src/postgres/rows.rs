//! Rows of the `events` table: a batch of new events encoded for one append call, and a
//! stored row decoded back into an event (anything unreadable is `Corrupt`, never a panic).

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::sql::row::{Cells, Column, Columns, EVENT_ID, StoredRow};
use crate::store::StoreError;
use crate::store::backend::{check_stream, metadata_json};

/// A timestamp as stored: whole microseconds (what `timestamptz` holds) and the
/// nanoseconds below them.
pub(super) fn split_timestamp(timestamp: DateTime<Utc>) -> (DateTime<Utc>, i32) {
    let nanos = timestamp.timestamp_subsec_nanos() % 1000;
    let micros = timestamp - TimeDelta::nanoseconds(i64::from(nanos));
    (micros, i32::try_from(nanos).unwrap_or(0))
}

/// A stored timestamp, if its nanoseconds are in range.
pub(super) fn join_timestamp(micros: DateTime<Utc>, nanos: i32) -> Option<DateTime<Utc>> {
    (0..1000)
        .contains(&nanos)
        .then(|| micros + TimeDelta::nanoseconds(i64::from(nanos)))
}

/// Whether `value` holds a NUL character, which PostgreSQL's `jsonb` and `text` refuse. In
/// JSON text a NUL is always escaped, as `\u0000`, and that escape is one when an even number
/// of backslashes comes before it (`\\u0000` is a backslash, then `u0000`).
pub(super) fn has_nul(json: &str) -> bool {
    json.match_indices("\\u0000").any(|(at, _)| {
        let backslashes = json[..at].bytes().rev().take_while(|&b| b == b'\\').count();
        backslashes % 2 == 0
    })
}

/// The error for a value PostgreSQL cannot store, as a serialization failure.
pub(super) fn unstorable(event_type: &str, what: &str) -> StoreError {
    StoreError::Serialize {
        event_type: event_type.to_owned(),
        source: <serde_json::Error as serde::ser::Error>::custom(format!(
            "{what} contains a NUL character, which PostgreSQL cannot store"
        )),
    }
}

/// A batch ready to bind: one array per column.
pub(super) struct Batch {
    pub(super) ids: Vec<Uuid>,
    pub(super) types: Vec<String>,
    pub(super) schema_versions: Vec<i64>,
    pub(super) recorded_at: Vec<DateTime<Utc>>,
    pub(super) nanos: Vec<i32>,
    pub(super) payloads: Vec<String>,
    /// One text a row, or one for every row when they all share their metadata.
    pub(super) metadata: Vec<String>,
}

impl Batch {
    /// Serializes `events`; a failure (or a value PostgreSQL cannot hold) appends nothing.
    pub(super) fn new(stream: &StreamId, events: &[NewEvent]) -> Result<Self, StoreError> {
        let mut batch = Self {
            ids: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            recorded_at: Vec::with_capacity(events.len()),
            nanos: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
        };
        // Also checked before every append's span starts; kept here, next to the other
        // values PostgreSQL cannot hold.
        check_stream(stream)?;
        // Events that share their metadata (a command's lineage, a traced append's context)
        // send it once: the server reads that one text into `jsonb` and gives it to every
        // row (see the append statement), instead of reading the same text a row at a time.
        let shared = events
            .windows(2)
            .all(|pair| pair[0].metadata.is_same(&pair[1].metadata));
        for (index, event) in events.iter().enumerate() {
            let event_type = event.event_type.as_ref();
            if event_type.contains('\0') {
                return Err(unstorable(event_type, "the event type"));
            }
            if has_nul(event.payload.as_str()) {
                return Err(unstorable(event_type, "the payload"));
            }
            if index == 0 || !shared {
                // The text sent, which may be the metadata's stored form, not its entries.
                let metadata = metadata_json(event)?;
                if has_nul(&metadata) {
                    return Err(unstorable(event_type, "the metadata"));
                }
                batch.metadata.push(metadata);
            }
            let (micros, nanos) = split_timestamp(event.timestamp);
            batch.ids.push(event.event_id);
            batch.types.push(event_type.to_owned());
            batch.schema_versions.push(i64::from(event.schema_version));
            batch.recorded_at.push(micros);
            batch.nanos.push(nanos);
            batch.payloads.push(event.payload.as_str().to_owned());
        }
        Ok(batch)
    }
}

/// Whether `error` is the unique violation of a stream's version.
pub(super) fn is_version_taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if e.is_unique_violation() && e.constraint() == Some("events_stream_version_key"))
}

/// PostgreSQL's own columns of the store's `SELECT` (`COLUMNS` in `events.rs`), after the
/// shared ones.
const RECORDED_AT: Column = Column(7, "recorded_at");
const RECORDED_AT_NANOS: Column = Column(8, "recorded_at_nanos");
const PAYLOAD: Column = Column(9, "payload");
const METADATA: Column = Column(10, "metadata");

/// Reads one stored event; anything unreadable is [`StoreError::Corrupt`], never a panic.
/// Payload and metadata come from `jsonb`, valid JSON by construction: taken as they are.
pub(super) fn decode(row: &PgRow) -> Result<EventEnvelope, StoreError> {
    decode_of(row, None)
}

/// [`decode`] of a row of the stream `known` (a load's), sharing its id. (Any [`Cells`]: the
/// fuzz targets give it values of their own.)
pub(crate) fn decode_of<'r>(
    row: impl Cells<'r>,
    known: Option<&StreamId>,
) -> Result<EventEnvelope, StoreError> {
    StoredRow::new(row, Columns::Typed, known).envelope([PAYLOAD, METADATA], |stored| {
        let event_id = stored.uuid(EVENT_ID)?;
        let micros = stored.timestamp(RECORDED_AT)?;
        let nanos = stored.int4(RECORDED_AT_NANOS)?;
        let timestamp = join_timestamp(micros, nanos)
            .ok_or_else(|| stored.corrupt(RECORDED_AT_NANOS.1, &nanos))?;
        Ok((event_id, timestamp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_in_json_text_and_an_escaped_backslash_is_not_one() {
        let nul = |value: serde_json::Value| has_nul(&value.to_string());
        assert!(nul(serde_json::json!({ "a": "x\u{0}y" })));
        assert!(nul(serde_json::json!({ "key\u{0}": 1 })));
        assert!(nul(serde_json::json!(["ok", ["\\\u{0}"]])));
        assert!(!nul(serde_json::json!({ "a": "\\u0000" })));
        assert!(!nul(serde_json::json!({ "a": "\\\\u0000", "b": 7 })));
        assert!(!nul(serde_json::json!({ "a": "plain" })));
    }
}
