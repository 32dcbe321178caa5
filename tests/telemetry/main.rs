//! Spans read back from an in-memory exporter: `#[traced]`, nesting under other
//! instrumentations, each component's spans.
//!
//! One test binary for the area (each file a module), so the suite links a few binaries
//! rather than one per file.

mod telemetry_components;
mod traced;
mod traced_nesting;

// Helpers shared by the modules below, declared once.
