//! Events as an operator reads them: a stream's, the log's from a position, or a
//! correlation's, each with its metadata, trace id and trace link.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::OperateError;
use crate::event::{EventEnvelope, StreamId};
use crate::store::{BatchEnd, EventStore, StoreError};

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventQuery {
    /// A stream's, from a version on (1: all).
    Stream {
        /// The stream.
        stream: StreamId,
        /// The first version.
        from_version: u64,
    },
    /// The log's, from a global position on.
    Log {
        /// The first position.
        from_position: u64,
    },
    /// Every event of a correlation id, in order.
    Correlation(String),
}

/// An event as an operator reads it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct EventView {
    /// Its position in the log.
    pub position: u64,
    /// Its stream's aggregate type.
    pub aggregate_type: String,
    /// Its stream's aggregate id.
    pub aggregate_id: String,
    /// Its version in its stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// Its payload's schema version.
    pub schema_version: u32,
    /// Its id.
    pub event_id: Uuid,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
    /// Its correlation id.
    pub correlation_id: Option<String>,
    /// Its causation id.
    pub causation_id: Option<String>,
    /// The trace id of the span that stored it.
    pub trace_id: Option<String>,
    /// Its trace's link, from the template given.
    pub trace_url: Option<String>,
    /// Its whole metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its payload.
    pub payload: serde_json::Value,
}

impl EventView {
    /// `event` as read, its trace linked through `trace_url` (a template with
    /// `{trace_id}`).
    #[must_use]
    pub fn of(event: &EventEnvelope, trace_url: Option<&str>) -> Self {
        let metadata = &event.metadata;
        let trace_id = metadata.trace_id();
        Self {
            position: event.position,
            aggregate_type: event.stream.aggregate_type().to_owned(),
            aggregate_id: event.stream.aggregate_id().to_owned(),
            version: event.version,
            event_type: event.event_type.to_string(),
            schema_version: event.schema_version,
            event_id: event.event_id,
            recorded_at: event.timestamp,
            correlation_id: metadata.correlation_id().map(str::to_owned),
            causation_id: metadata.causation_id().map(str::to_owned),
            trace_url: trace_link(trace_url, trace_id.as_deref()),
            trace_id,
            metadata: metadata
                .iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            payload: event.payload.to_value(),
        }
    }
}

/// What [`read_events`] read: the events, and the error of the event that stopped a read
/// of the log (those before it are read).
#[derive(Debug)]
#[non_exhaustive]
pub struct EventPage {
    /// The events read, in order.
    pub events: Vec<EventView>,
    /// The error of the event that could not be read, after those read.
    pub unreadable: Option<StoreError>,
}

/// `template` with `{trace_id}` replaced, when both are given.
#[must_use]
pub fn trace_link(template: Option<&str>, trace_id: Option<&str>) -> Option<String> {
    Some(template?.replace("{trace_id}", trace_id?))
}

/// `TYPE/ID` (e.g. `Order/o-1`) as a stream.
///
/// # Errors
/// [`OperateError::Invalid`] when it is not `TYPE/ID`.
pub fn parse_stream(text: &str) -> Result<StreamId, OperateError> {
    match text.split_once('/') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok(StreamId::new(kind.to_owned(), id))
        }
        _ => Err(OperateError::Invalid(format!(
            "malformed stream `{text}`: give TYPE/ID, e.g. Order/o-1"
        ))),
    }
}

/// At most `limit` events `query` names, each linked to its trace through `trace_url`.
///
/// # Errors
/// [`OperateError::Store`] when the store fails before any event is read.
pub async fn read_events(
    store: &dyn EventStore,
    query: &EventQuery,
    limit: usize,
    trace_url: Option<&str>,
) -> Result<EventPage, OperateError> {
    let (mut events, unreadable) = match query {
        EventQuery::Stream {
            stream,
            from_version,
        } => {
            let events = store
                .load_page(stream, *from_version, limit)
                .await
                .map_err(OperateError::store(format!(
                    "cannot read stream `{}/{}`",
                    stream.aggregate_type(),
                    stream.aggregate_id()
                )))?;
            (events, None)
        }
        EventQuery::Correlation(correlation) => {
            let events =
                store
                    .events_by_correlation(correlation)
                    .await
                    .map_err(OperateError::store(format!(
                        "cannot read the events of correlation {correlation}"
                    )))?;
            (events, None)
        }
        EventQuery::Log { from_position } => {
            let batch =
                store
                    .read_all(*from_position, limit)
                    .await
                    .map_err(OperateError::store(format!(
                        "cannot read the log from {from_position}"
                    )))?;
            let (events, end) = batch.into_parts();
            let unreadable = match end {
                BatchEnd::Unreadable(error) => Some(error),
                _ => None,
            };
            (events, unreadable)
        }
    };
    events.truncate(limit);
    Ok(EventPage {
        events: events
            .iter()
            .map(|event| EventView::of(event, trace_url))
            .collect(),
        unreadable,
    })
}
