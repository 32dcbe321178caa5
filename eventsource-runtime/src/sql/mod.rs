//! What the SQLite and PostgreSQL stores share (the internal `sql` feature, turned on by
//! either): reading stored events and snapshots back from rows, numbered schema versions,
//! and the conversions and error every query shares.

pub(crate) mod row;
pub(crate) mod schema;
pub(crate) mod snapshot_row;

use crate::store::StoreError;

/// The database failed.
pub(crate) fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// A count, version or position as the database's 64-bit integer (saturating: nothing
/// stored is that large).
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count, version or position read back from the database's 64-bit integer (a negative
/// one is never written; read as 0).
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
