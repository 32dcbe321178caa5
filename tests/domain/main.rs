//! Aggregates, commands, repositories, lineage, upcasting and in-process projections: what
//! the domain layer does, on the in-memory store and (where `DATABASE_URL` is set) on
//! SQLite and PostgreSQL.
//!
//! One test binary for the area (each file a module), so the suite links a few binaries
//! rather than one per file.

mod aggregate;
mod batch_reads;
mod command_handler;
mod commands;
mod commands_once;
mod concurrent_commands;
mod idempotent_handlers;
mod in_memory_store;
mod lineage;
mod long_streams;
mod projection_batches;
mod projection_macro;
mod query;
mod relay;
mod repository_cache;
mod snapshot_versions;
mod upcasting;

// Helpers shared by the modules below, declared once.
use eventsource_runtime::testing::conformance;
use eventsource_test_support::domain;
use eventsource_test_support::postgres;
