//! Schema evolution on every store: the cases of `upcasting.rs` (its runner's in `upcasting_runner.rs`)
//! (events written by older code read by code at the newest versions: steps, renames,
//! splits, mixed versions; failures stopped at, parked and reported; the projection
//! runner; spans and the upcast counter), each on the in-memory, SQLite and PostgreSQL
//! stores.
//!
//! PostgreSQL comes from `DATABASE_URL` (see `tests/common/postgres.rs`): without it each
//! PostgreSQL case prints `skipped: DATABASE_URL not set` and passes, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1`.

mod customer;

#[allow(
    clippy::module_inception,
    reason = "the suite's runner half names it `super::upcasting`"
)]
mod upcasting;

mod upcasting_runner;

use crate::postgres as pg;

use std::sync::Arc;

use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::InMemoryEventStore;
use upcasting::Backend;

/// Every case, from both halves of the suite.
mod suite {
    pub use super::upcasting::*;
    pub use super::upcasting_runner::*;
}

/// Fresh in-memory stores.
async fn memory(_test: &str) -> Option<(Backend, Option<pg::TestDb>)> {
    let backend = Backend {
        events: Arc::new(InMemoryEventStore::new()),
        checkpoints: Arc::new(InMemoryCheckpointStore::new()),
    };
    Some((backend, None))
}

/// A fresh in-memory SQLite database.
async fn sqlite(_test: &str) -> Option<(Backend, Option<pg::TestDb>)> {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let backend = Backend {
        checkpoints: Arc::new(store.checkpoint_store()),
        events: Arc::new(store),
    };
    Some((backend, None))
}

/// A fresh PostgreSQL schema, or `None` (the case is skipped) without a server.
async fn postgres(test: &str) -> Option<(Backend, Option<pg::TestDb>)> {
    let db = pg::TestDb::open(test).await?;
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let backend = Backend {
        checkpoints: Arc::new(store.checkpoint_store()),
        events: Arc::new(store),
    };
    Some((backend, Some(db)))
}

/// One test per case on the stores of `$open`.
macro_rules! on_store {
    ($store:ident: $($case:ident),+ $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!(stringify!($store), "::", stringify!($case));
                    let Some((backend, db)) = super::$store(test).await else {
                        return;
                    };
                    super::suite::$case(&backend).await;
                    if let Some(db) = db {
                        db.cleanup().await;
                    }
                }
            )+
        }
    };
}

macro_rules! every_case {
    ($($store:ident),+) => {
        $(
            on_store!($store:
                v1_events_load_through_two_steps,
                mixed_versions_in_one_stream,
                renamed_and_split_types_keep_stream_versions,
                upcasts_are_counted_by_type_and_versions,
                a_failing_upcaster_fails_the_load,
                a_registration_error_fails_every_load_that_needs_it,
                a_newer_stored_version_is_a_typed_error,
                a_projection_sees_upcast_events,
                an_untraced_projections_reads_say_what_they_upcast,
                a_failing_upcaster_stops_the_runner,
                a_failing_upcaster_is_parked,
            );
        )+
    };
}

every_case!(memory, sqlite, postgres);
