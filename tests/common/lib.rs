//! What the workspace's test binaries share, compiled once: the servers a test asks for
//! (`servers`), a test's PostgreSQL schema (`postgres`), least-privilege roles (`pg_roles`),
//! throwaway certificates (`pki`), the example's processes and their faults (`processes`,
//! `faults`, `server_process`), the broker restart scenario (`broker_restart`), the
//! Jepsen-style histories those processes write and their checker (`history`), an OTLP
//! collector and its spans (`otlp_collector`, `otlp`), the telemetry contract's text and its
//! PromQL (`contract_doc`, `promql`), the examples' order domain (`domain`) and its events as
//! stored (`envelopes`), an error's chain on one line (`errors`), a consumer group running
//! in a task of its own (`groups`), the two
//! services of the lineage tests (`lineage_domain`), a test's own store over another
//! (`stores`), and the compile-fail cases' shared domain (`ui`). What one binary alone uses
//! lives with
//! that binary (the upcasting domain and cases in `tests/domain/upcasting/`, the graceful
//! stop scenarios in `tests/brokers/`).

// What `pg_roles` runs the store suites with.
use eventsource_runtime::testing::conformance;

pub mod broker_restart;
pub mod contract_doc;
#[path = "../../examples/domain/order.rs"]
pub mod domain;
pub mod envelopes;
pub mod errors;
#[cfg(all(feature = "rabbitmq", feature = "kafka", feature = "nats"))]
pub mod faults;
pub mod groups;
pub mod history;
pub mod lineage_domain;
pub mod netns;
pub mod otlp;
pub mod otlp_collector;
pub mod pg_roles;
#[cfg(any(feature = "rabbitmq", feature = "kafka", feature = "nats"))]
pub mod pki;
pub mod postgres;
#[cfg(all(feature = "rabbitmq", feature = "kafka", feature = "nats"))]
pub mod processes;
pub mod promql;
pub mod server_process;
pub mod servers;
pub mod stores;
pub mod ui;
