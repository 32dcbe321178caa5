//! Reading stored events back from SQL rows, shared by the SQLite and PostgreSQL stores:
//! every unreadable column is [`StoreError::Corrupt`] naming the stream, version and position
//! (as far as they can be read), never a panic.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::event::{EventEnvelope, Metadata, Payload, StreamId};
use crate::store::backend::ReadAll;
use crate::store::{ReadBatch, StoreError};

/// One events-table row being decoded.
pub(crate) struct StoredRow<'r, R> {
    row: &'r R,
    stream: StreamId,
    version: u64,
    position: u64,
}

impl<'r, R> StoredRow<'r, R>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    /// Starts decoding `row`; the stream and version its errors name are read best-effort.
    pub(crate) fn new(row: &'r R) -> Self {
        let id = row.try_get::<String, _>("stream_id").unwrap_or_else(|_| {
            let position = row.try_get::<i64, _>("position").unwrap_or(0);
            format!("?@{position}")
        });
        let stream_type = row
            .try_get::<String, _>("stream_type")
            .unwrap_or_else(|_| "?".to_owned());
        let version = row
            .try_get::<i64, _>("version")
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0);
        let position = row
            .try_get::<i64, _>("position")
            .ok()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(0);
        Self {
            row,
            stream: StreamId::new(stream_type, id),
            version,
            position,
        }
    }

    /// The error for an unreadable `column`.
    pub(crate) fn corrupt(&self, column: &str, reason: &dyn Display) -> StoreError {
        StoreError::Corrupt {
            stream: self.stream.clone(),
            version: self.version,
            position: self.position,
            reason: format!("{column}: {reason}"),
        }
    }

    /// The value of `column`.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: Decode<'r, R::Database> + Type<R::Database>,
    {
        self.row
            .try_get::<T, _>(column)
            .map_err(|e| self.corrupt(column, &e))
    }

    fn count(&self, column: &str) -> Result<u64, StoreError> {
        let value = self.get::<i64>(column)?;
        u64::try_from(value).map_err(|e| self.corrupt(column, &e))
    }

    /// The envelope, from the columns both stores share plus the event id and timestamp,
    /// which each store keeps in its own way (`stored` reads those).
    pub(crate) fn envelope(
        self,
        stored: impl FnOnce(&Self) -> Result<(Uuid, DateTime<Utc>), StoreError>,
    ) -> Result<EventEnvelope, StoreError> {
        self.get::<String>("stream_type")?;
        self.get::<String>("stream_id")?;
        let version = self.count("version")?;
        let position = self.count("position")?;
        let (event_id, timestamp) = stored(&self)?;
        let event_type = self.get::<String>("event_type")?;
        let schema_version = self.get::<i64>("schema_version")?;
        let schema_version =
            u32::try_from(schema_version).map_err(|e| self.corrupt("schema_version", &e))?;
        let payload = self.get::<String>("payload")?;
        let payload = Payload::from_json(payload).map_err(|e| self.corrupt("payload", &e))?;
        let metadata = self.get::<String>("metadata")?;
        let metadata = Metadata::from_json(metadata).map_err(|e| self.corrupt("metadata", &e))?;
        Ok(EventEnvelope {
            event_id,
            stream: self.stream,
            version,
            position,
            event_type: event_type.into(),
            schema_version,
            timestamp,
            payload,
            metadata,
        })
    }
}

/// `read_all`'s rule for unreadable events: the events before the first unreadable one,
/// with its error as the batch's end, or its error alone when it is the first (so a reader
/// gets everything up to it, and learns why the batch ended there).
pub(crate) fn readable_prefix(
    events: impl IntoIterator<Item = Result<EventEnvelope, StoreError>>,
    limit: usize,
) -> ReadAll {
    let mut readable = Vec::new();
    for event in events {
        match event {
            Ok(event) => readable.push(event),
            Err(error) if readable.is_empty() => return Err(error),
            Err(error) => return Ok(ReadBatch::unreadable(readable, error)),
        }
    }
    Ok(ReadBatch::new(readable, limit))
}
