//! The telemetry every [`EventStore`](super::EventStore) implementation shares: one call
//! per operation wraps the store's own work in the contract's CLIENT span, stores the
//! current trace context in each appended event, and records the outcome.
//!
//! Without the `tracing` feature these calls run the work and nothing else.

use std::future::Future;

use super::{AppendResult, ExpectedVersion, StoreError};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::telemetry::config::StoreTelemetry;
#[cfg(feature = "tracing")]
use crate::telemetry::{propagation, spans};
#[cfg(feature = "tracing")]
use tracing::Instrument as _;

#[cfg(feature = "tracing")]
fn error_type(error: &StoreError) -> &'static str {
    match error {
        StoreError::Conflict(_) => "VersionConflict",
        StoreError::Corrupt { .. } => "StoreError::Corrupt",
        StoreError::Serialize { .. } => "StoreError::Serialize",
        StoreError::Unavailable(_) => "StoreError::Unavailable",
    }
}

/// Runs an append: span, W3C context into each event's metadata (unless the caller put
/// one there), `event_persisted` span events, status.
///
/// # Errors
/// Whatever `append` returns.
pub async fn append<F, Fut>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    operation: &'static str,
    append: F,
) -> Result<AppendResult, StoreError>
where
    F: FnOnce(Vec<NewEvent>) -> Fut,
    Fut: Future<Output = Result<AppendResult, StoreError>>,
{
    #[cfg(feature = "tracing")]
    {
        let mut events = events;
        let span = telemetry.append_span(stream, expected, events.len(), operation);
        span.in_scope(|| {
            for event in &mut events {
                if event.metadata.traceparent().is_none() {
                    propagation::inject_current(&mut event.metadata);
                }
            }
        });
        let result = append(events).instrument(span.clone()).await;
        match &result {
            Ok(appended) => spans::store_appended(&span, appended.version, &appended.events),
            Err(e) => spans::record_error(&span, error_type(e), e),
        }
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, stream, expected, operation);
        append(events).await
    }
}

/// Runs a stream read: span, loaded count, status.
///
/// # Errors
/// Whatever `load` returns.
pub async fn load<Fut>(
    telemetry: &StoreTelemetry,
    stream: &StreamId,
    from_version: u64,
    operation: &'static str,
    load: Fut,
) -> Result<Vec<EventEnvelope>, StoreError>
where
    Fut: Future<Output = Result<Vec<EventEnvelope>, StoreError>>,
{
    #[cfg(feature = "tracing")]
    {
        let span = telemetry.load_span(stream, from_version, operation);
        let result = load.instrument(span.clone()).await;
        match &result {
            Ok(events) => spans::store_loaded(&span, events.len()),
            Err(e) => spans::record_error(&span, error_type(e), e),
        }
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, stream, from_version, operation);
        load.await
    }
}

/// Runs a global read: span, loaded count, status.
///
/// # Errors
/// Whatever `read` returns.
pub async fn read_all<Fut>(
    telemetry: &StoreTelemetry,
    from_position: u64,
    limit: usize,
    operation: &'static str,
    read: Fut,
) -> Result<Vec<EventEnvelope>, StoreError>
where
    Fut: Future<Output = Result<Vec<EventEnvelope>, StoreError>>,
{
    #[cfg(feature = "tracing")]
    {
        let span = telemetry.read_all_span(from_position, limit, operation);
        let result = read.instrument(span.clone()).await;
        match &result {
            Ok(events) => spans::store_loaded(&span, events.len()),
            Err(e) => spans::record_error(&span, error_type(e), e),
        }
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, from_position, limit, operation);
        read.await
    }
}
