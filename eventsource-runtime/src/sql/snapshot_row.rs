//! A row of the `snapshots` table read back: the columns both databases store alike, each
//! failure naming its column. Each database reads its own timestamp.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::event::StreamId;
use crate::snapshot::Snapshot;

/// The column `name` of `row`, or why it cannot be read (naming it).
pub(crate) fn column<'r, R, T>(row: &'r R, name: &'static str) -> Result<T, String>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    row.try_get(name).map_err(|e| format!("{name}: {e}"))
}

/// The snapshot of `stream` stored in `row`, taken at `taken_at` (read by the caller), or
/// why it cannot be read.
pub(crate) fn snapshot_of<'r, R>(
    row: &'r R,
    stream: &StreamId,
    taken_at: Result<DateTime<Utc>, String>,
) -> Result<Snapshot, String>
where
    R: Row,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let version: i64 = column(row, "version")?;
    let state: String = column(row, "state")?;
    let schema_version: i64 = column(row, "schema_version")?;
    Ok(Snapshot {
        stream: stream.clone(),
        version: u64::try_from(version).map_err(|e| format!("version: {e}"))?,
        state: serde_json::from_str(&state).map_err(|e| format!("state: {e}"))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|e| format!("schema_version: {e}"))?,
        taken_at: taken_at?,
    })
}
