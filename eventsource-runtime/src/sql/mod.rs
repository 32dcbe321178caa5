//! What the SQLite and PostgreSQL stores share (the internal `sql` feature, turned on by
//! either): reading stored events and snapshots back from rows, and numbered schema versions.

pub(crate) mod row;
pub(crate) mod schema;
pub(crate) mod snapshot_row;
