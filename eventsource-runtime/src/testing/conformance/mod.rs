//! The behaviour every implementation of a store trait must have, one suite per trait,
//! for a store of your own to run: the runtime's in-memory, SQLite and PostgreSQL stores run
//! the same suites in its own tests.
//!
//! - [`events`], for [`EventStore`](crate::store::EventStore), with [`batches`] (large
//!   appends, paged loads) and [`reader`] (`read_all_batches`);
//! - [`snapshots`], for [`SnapshotStore`](crate::snapshot::SnapshotStore);
//! - [`checkpoints`], for [`CheckpointStore`](crate::projection::checkpoint::CheckpointStore),
//!   with its leases and parked events;
//! - [`processed`], for [`ProcessedMessages`](crate::bus::ProcessedMessages), with its claims;
//! - `baggage` (with the `tracing` feature): W3C baggage through a store, three hops;
//! - `broker` (with the `tracing` feature), for a broker adapter: an
//!   [`EventBus`](crate::bus::EventBus) and its consumer groups, over a fixture the
//!   adapter's test implements.
//!
//! Each suite's `run_all` takes a function that makes a fresh, empty store (each check
//! starts from one); a check that needs what only the backend can do (damage a row, reopen
//! a file, reach the same data through a second connection pool) is a function of its own
//! that takes it as an argument. A failed check panics, as a test's assertion does.
//!
//! ```
//! use std::sync::Arc;
//! use eventsource_runtime::store::{EventStore, InMemoryEventStore};
//! use eventsource_runtime::testing::conformance;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! conformance::events::run_all(|| async {
//!     Arc::new(InMemoryEventStore::new()) as Arc<dyn EventStore>
//! })
//! .await;
//! # });
//! ```

#[cfg(feature = "tracing")]
pub mod baggage;
pub mod batches;
#[cfg(feature = "tracing")]
pub mod broker;
pub mod checkpoints;
pub mod events;
pub mod processed;
pub mod reader;
pub mod snapshots;

use std::time::Duration;

use crate::event::NewEvent;

/// The event `Counted` numbered `n`, as the store suites append it.
fn counted(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, serde_json::json!({ "n": n }))
}

/// Events `Counted` numbered by `range`.
fn counted_events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(counted).collect()
}

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
