//! What the SQLite and PostgreSQL stores share (the internal `sql` feature, turned on by
//! either): reading stored events back from rows, and numbered schema versions.

pub(crate) mod row;
pub(crate) mod schema;
