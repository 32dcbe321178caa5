//! The SQL stores: SQLite, and PostgreSQL's roles and TLS.
//!
//! One test binary for the area (each file a module), so the suite links a few binaries
//! rather than one per file.

mod postgres_roles;
mod postgres_tls;
mod sqlite;

// Helpers shared by the modules below, declared once.
use eventsource_runtime::testing::conformance;
use eventsource_test_support::pg_roles;
use eventsource_test_support::servers;
