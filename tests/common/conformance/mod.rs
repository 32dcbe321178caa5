//! The behaviour every implementation of a store trait must have: one suite per trait,
//! each run by every implementation (in memory, SQLite, PostgreSQL) from its own test file
//! (`tests/domain/in_memory_store.rs`, `tests/stores/sqlite_store.rs`, `tests/postgres_store/`). A new
//! store passes them all by calling each suite with its stores:
//!
//! - [`events`], for `store::EventStore`, with [`batches`] (large appends, paged loads)
//!   and [`reader`] (`read_all_batches`);
//! - [`snapshots`], for `snapshot::SnapshotStore`;
//! - [`checkpoints`], for `projection::checkpoint::CheckpointStore`, with its leases and
//!   parked events;
//! - [`processed`], for `bus::ProcessedMessages`, with its claims.
//!
//! A check that needs what only the backend can do (damage a row, reopen a file, reach the
//! same data through a second connection pool) takes it as an argument.
//!
//! Included with `#[path = "common/conformance/mod.rs"] mod conformance;`.
#![allow(dead_code)]

pub mod batches;
pub mod checkpoints;
pub mod events;
pub mod processed;
pub mod reader;
pub mod snapshots;

use std::time::Duration;

/// Waits (up to 5 s) until `check` holds.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
