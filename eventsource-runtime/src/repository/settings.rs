//! A repository's telemetry settings: its switch, the opt-in replay span, its span names.

use crate::telemetry::attributes::{
    SPAN_REPOSITORY_EXISTS, SPAN_REPOSITORY_LOAD, SPAN_REPOSITORY_SAVE,
};
use crate::telemetry::values::span_names;

span_names! {
    /// Span names of a repository's operations.
    pub struct RepositorySpanNames {
        /// Loading an aggregate.
        load = SPAN_REPOSITORY_LOAD,
        /// Saving an aggregate.
        save = SPAN_REPOSITORY_SAVE,
        /// Checking an aggregate exists.
        exists = SPAN_REPOSITORY_EXISTS,
    }
}

/// A repository's telemetry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryTelemetry {
    /// The component switch (on by default).
    pub enabled: bool,
    /// A span around each aggregate replay (off by default: the count and resulting version
    /// are on the load span anyway).
    pub replay_span: bool,
    /// Span names.
    pub names: RepositorySpanNames,
}

impl Default for RepositoryTelemetry {
    fn default() -> Self {
        Self {
            enabled: true,
            replay_span: false,
            names: RepositorySpanNames::default(),
        }
    }
}
