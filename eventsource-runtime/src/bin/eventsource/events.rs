//! `eventsource events`: a stream's events, the log's from a position, or a correlation's,
//! each with its metadata, trace id and trace link.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use eventsource_runtime::event::{EventEnvelope, StreamId};
use eventsource_runtime::store::BatchEnd;
use serde::Serialize;
use uuid::Uuid;

use crate::args::EventsQuery;
use crate::exit::CliError;
use crate::output;
use crate::store::Stores;

/// An event as printed.
#[derive(Debug, Serialize)]
struct Event {
    position: u64,
    aggregate_type: String,
    aggregate_id: String,
    version: u64,
    event_type: String,
    schema_version: u32,
    event_id: Uuid,
    recorded_at: DateTime<Utc>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    trace_id: Option<String>,
    trace_url: Option<String>,
    metadata: BTreeMap<String, String>,
    payload: serde_json::Value,
}

impl Event {
    fn of(event: &EventEnvelope, trace_url: Option<&str>) -> Self {
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
            trace_url: output::trace_link(trace_url, trace_id.as_deref()),
            trace_id,
            metadata: metadata
                .iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            payload: event.payload.to_value(),
        }
    }

    /// `#12  Order/o-1 v3  OrderPlaced  2026-...Z  correlation=... causation=... trace=...`.
    fn line(&self) -> String {
        let mut line = format!(
            "#{}  {}/{} v{}  {}  {}",
            self.position,
            self.aggregate_type,
            self.aggregate_id,
            self.version,
            self.event_type,
            self.recorded_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        let fields = [
            ("correlation", &self.correlation_id),
            ("causation", &self.causation_id),
            ("trace", &self.trace_id),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                line.push_str(&format!("  {name}={value}"));
            }
        }
        if let Some(url) = &self.trace_url {
            line.push_str(&format!("  {url}"));
        }
        line.push('\n');
        line
    }
}

/// `TYPE/ID` as a stream.
pub fn stream_of(text: &str) -> Result<StreamId, CliError> {
    match text.split_once('/') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok(StreamId::new(kind.to_owned(), id))
        }
        _ => Err(CliError::Usage(format!(
            "malformed stream `{text}`: give TYPE/ID, e.g. Order/o-1"
        ))),
    }
}

pub async fn run(stores: &Stores, query: &EventsQuery, json: bool) -> Result<(), CliError> {
    let store = &*stores.events;
    let limit = query.limit as usize;
    let (events, unreadable) = if let Some(text) = &query.stream {
        let stream = stream_of(text)?;
        let from = query.from.unwrap_or(1);
        let mut events = store
            .load_page(&stream, from, limit)
            .await
            .map_err(CliError::store(format!("cannot read stream `{text}`")))?;
        events.truncate(limit);
        (events, None)
    } else if let Some(correlation) = &query.correlation {
        let mut events =
            store
                .events_by_correlation(correlation)
                .await
                .map_err(CliError::store(format!(
                    "cannot read the events of correlation {correlation}"
                )))?;
        events.truncate(limit);
        (events, None)
    } else if let Some(from) = query.from {
        let batch = store
            .read_all(from, limit)
            .await
            .map_err(CliError::store(format!("cannot read the log from {from}")))?;
        let (events, end) = batch.into_parts();
        let unreadable = match end {
            BatchEnd::Unreadable(error) => Some(error),
            _ => None,
        };
        (events, unreadable)
    } else {
        return Err(CliError::Usage(
            "give --stream TYPE/ID, --from POSITION or --correlation ID".to_owned(),
        ));
    };
    let events: Vec<Event> = events
        .iter()
        .map(|event| Event::of(event, query.trace_url.as_deref()))
        .collect();
    if json {
        output::json(&events)?;
    } else {
        let text: String = events.iter().map(Event::line).collect();
        output::text(&text)?;
    }
    // What was read is printed; then the event that stopped the read is an error.
    match unreadable {
        Some(source) => Err(CliError::Store {
            what: "cannot read the next event".to_owned(),
            source,
        }),
        None => Ok(()),
    }
}
