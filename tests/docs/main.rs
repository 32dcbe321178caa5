//! What the docs and the examples promise, held to the code: the seeds' flows, the examples
//! run, the deploy files, the OTLP example, a build without `tracing`.
//!
//! One test binary for the area (each file a module), so the suite links a few binaries
//! rather than one per file.

mod compile_time_switch;
mod deploy;
mod example_otlp;
mod examples;
mod layers;
mod seeds;

// Helpers shared by the modules below, declared once.
use eventsource_test_support::otlp;
use eventsource_test_support::otlp_collector;
