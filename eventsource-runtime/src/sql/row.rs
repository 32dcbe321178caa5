//! Reading stored events back from SQL rows, shared by the SQLite and PostgreSQL stores:
//! every unreadable column is [`StoreError::Corrupt`] naming the stream, version and position
//! (as far as they can be read), never a panic.

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::event::{EventEnvelope, Metadata, Payload, StreamId};
use crate::store::backend::ReadAll;
use crate::store::{ReadBatch, StoreError};

/// A column of the stores' `SELECT`s of events: where it is in the row, and its name for
/// errors. Read by index: a lookup by name hashes the name, for every column of every row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column(pub(crate) usize, pub(crate) &'static str);

/// The columns both stores select first, in this order (see their `SELECT`s); each store's
/// own columns follow.
pub(crate) const POSITION: Column = Column(0, "position");
pub(crate) const STREAM_TYPE: Column = Column(1, "stream_type");
pub(crate) const STREAM_ID: Column = Column(2, "stream_id");
pub(crate) const VERSION: Column = Column(3, "version");
pub(crate) const EVENT_ID: Column = Column(4, "event_id");
pub(crate) const EVENT_TYPE: Column = Column(5, "event_type");
pub(crate) const SCHEMA_VERSION: Column = Column(6, "schema_version");

/// What a store's columns hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Columns {
    /// Their declared types, which the database enforces (PostgreSQL): read without sqlx's
    /// check of each value's type, which costs a type comparison per column of every row;
    /// JSON (`jsonb` written out as text) valid by construction, taken as it is. The
    /// projection's own parse is the only one.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Typed,
    /// Whatever was written (SQLite), which a damaged row may hold: each value's type is
    /// checked, and the JSON text once, without building a value, so an unreadable event
    /// is found at the read.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Untyped,
}

/// The cells of one row as the decoding reads them, each by its type: an sqlx row (any
/// database whose driver decodes these types), or, for the fuzz targets, values given one
/// by one (`__fuzz::sql`). Every failure is sqlx's error, which the decoding turns into
/// [`StoreError::Corrupt`].
pub(crate) trait Cells<'r> {
    /// An integer column (`bigint`, SQLite's `INTEGER`).
    fn int(&self, columns: Columns, column: Column) -> Result<i64, sqlx::Error>;
    /// A text column, borrowed from the row.
    fn text(&self, columns: Columns, column: Column) -> Result<&'r str, sqlx::Error>;
    /// A column of JSON text: its text, borrowed from the row when the row holds it as it
    /// is.
    fn json(&self, columns: Columns, column: Column) -> Result<Cow<'r, str>, sqlx::Error> {
        self.text(columns, column).map(Cow::Borrowed)
    }
    /// A 32-bit integer column (PostgreSQL's `integer`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn int4(&self, columns: Columns, column: Column) -> Result<i32, sqlx::Error>;
    /// A UUID column (PostgreSQL's `uuid`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn uuid(&self, columns: Columns, column: Column) -> Result<Uuid, sqlx::Error>;
    /// A timestamp column (PostgreSQL's `timestamptz`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn timestamp(&self, columns: Columns, column: Column) -> Result<DateTime<Utc>, sqlx::Error>;
}

impl<'r, R> Cells<'r> for &'r R
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, columns: Columns, column: Column) -> Result<i64, sqlx::Error> {
        read(*self, columns, column)
    }

    fn text(&self, columns: Columns, column: Column) -> Result<&'r str, sqlx::Error> {
        read(*self, columns, column)
    }

    fn int4(&self, columns: Columns, column: Column) -> Result<i32, sqlx::Error> {
        read(*self, columns, column)
    }

    fn uuid(&self, columns: Columns, column: Column) -> Result<Uuid, sqlx::Error> {
        read(*self, columns, column)
    }

    fn timestamp(&self, columns: Columns, column: Column) -> Result<DateTime<Utc>, sqlx::Error> {
        read(*self, columns, column)
    }
}

/// One events-table row being decoded: each column read once, text borrowed from the row
/// and copied once, into the envelope.
pub(crate) struct StoredRow<C> {
    cells: C,
    columns: Columns,
    stream: StreamId,
    version: u64,
    position: u64,
    /// The first of the columns read up front that could not be: its name and why.
    unreadable: Option<(&'static str, String)>,
}

impl<'r, C: Cells<'r>> StoredRow<C> {
    /// Starts decoding `cells` (a row): the stream, version and position its errors name,
    /// read best-effort (an unreadable one is the envelope's error). The rows of a load,
    /// all of the stream `known`, share its id instead of copying the row's text.
    pub(crate) fn new(cells: C, columns: Columns, known: Option<&StreamId>) -> Self {
        let mut unreadable = None;
        let mut note = |column: Column, error: &dyn Display| {
            unreadable.get_or_insert_with(|| (column.1, error.to_string()));
        };
        let mut count = |column: Column| match cells.int(columns, column).map(u64::try_from) {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                note(column, &error);
                None
            }
            Err(error) => {
                note(column, &error);
                None
            }
        };
        let position = count(POSITION);
        let version = count(VERSION);
        let mut text = |column: Column| match cells.text(columns, column) {
            Ok(text) => Some(text),
            Err(error) => {
                note(column, &error);
                None
            }
        };
        // A load's rows are its stream's (its `WHERE` says so): their stream columns are
        // not read again.
        let stream = match known {
            Some(known) => known.clone(),
            None => {
                let stream_type = text(STREAM_TYPE).unwrap_or("?");
                match text(STREAM_ID) {
                    Some(id) => StreamId::from_stored(stream_type, id),
                    None => {
                        StreamId::from_stored(stream_type, &format!("?@{}", position.unwrap_or(0)))
                    }
                }
            }
        };
        Self {
            cells,
            columns,
            stream,
            version: version.unwrap_or(0),
            position: position.unwrap_or(0),
            unreadable,
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

    /// The value of `column`, read by `get`, its failure [`StoreError::Corrupt`].
    fn cell<T>(
        &self,
        column: Column,
        get: impl FnOnce(&C, Columns, Column) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        get(&self.cells, self.columns, column).map_err(|e| self.corrupt(column.1, &e))
    }

    /// The integer in `column`.
    pub(crate) fn int(&self, column: Column) -> Result<i64, StoreError> {
        self.cell(column, C::int)
    }

    /// The text in `column`.
    pub(crate) fn text(&self, column: Column) -> Result<&'r str, StoreError> {
        self.cell(column, C::text)
    }

    /// The 32-bit integer in `column`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn int4(&self, column: Column) -> Result<i32, StoreError> {
        self.cell(column, C::int4)
    }

    /// The UUID in `column`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn uuid(&self, column: Column) -> Result<Uuid, StoreError> {
        self.cell(column, C::uuid)
    }

    /// The timestamp in `column`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn timestamp(&self, column: Column) -> Result<DateTime<Utc>, StoreError> {
        self.cell(column, C::timestamp)
    }

    /// The JSON text of `column`, checked first when the column may hold anything. Blanks
    /// around it are left out.
    fn json(&self, column: Column) -> Result<Cow<'r, str>, StoreError> {
        let text = match self.cell(column, C::json)? {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
            Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
        };
        if self.columns == Columns::Untyped {
            // Borrowed: the check builds nothing.
            serde_json::from_str::<&RawValue>(&text).map_err(|e| self.corrupt(column.1, &e))?;
        }
        Ok(text)
    }

    /// The envelope, from the columns both stores share plus the event id and timestamp,
    /// which each store keeps in its own way (`stored` reads those), the payload and the
    /// metadata from the columns `payload` and `metadata`.
    pub(crate) fn envelope(
        self,
        [payload, metadata]: [Column; 2],
        stored: impl FnOnce(&Self) -> Result<(Uuid, DateTime<Utc>), StoreError>,
    ) -> Result<EventEnvelope, StoreError> {
        if let Some((column, reason)) = &self.unreadable {
            return Err(self.corrupt(column, reason));
        }
        let (event_id, timestamp) = stored(&self)?;
        let event_type = self.text(EVENT_TYPE)?.to_owned();
        let schema_version = self.int(SCHEMA_VERSION)?;
        let schema_version =
            u32::try_from(schema_version).map_err(|e| self.corrupt(SCHEMA_VERSION.1, &e))?;
        let payload = Payload::from_checked(Arc::from(&*self.json(payload)?));
        let metadata_text = self.json(metadata)?;
        if !metadata_text.starts_with('{') {
            return Err(self.corrupt(metadata.1, &"metadata is not a JSON object"));
        }
        // Empty metadata holds nothing (no text kept for every event without any).
        let metadata = if metadata_text == "{}" {
            Metadata::default()
        } else {
            Metadata::from_checked(Arc::from(&*metadata_text))
        };
        Ok(EventEnvelope {
            event_id,
            stream: self.stream,
            version: self.version,
            position: self.position,
            event_type: event_type.into(),
            schema_version,
            timestamp,
            payload,
            metadata,
        })
    }
}

/// The value of `column` in `row`, its type checked unless the database enforces it.
fn read<'r, T, R>(row: &'r R, columns: Columns, column: Column) -> Result<T, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    match columns {
        Columns::Typed => row.try_get_unchecked(column.0),
        Columns::Untyped => row.try_get(column.0),
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
