//! `eventsource events`: a stream's events, the log's from a position, or a correlation's,
//! each with its metadata, trace id and trace link (read by `eventsource_runtime::operate`,
//! which the console shares).

use chrono::SecondsFormat;
use eventsource_runtime::operate::{self, EventQuery, EventView};

use crate::args::EventsQuery;
use crate::exit::CliError;
use crate::output;
use eventsource_runtime::operate::OpenedStore;

/// `#12  Order/o-1 v3  OrderPlaced  2026-...Z  correlation=... causation=... trace=...`.
fn line(event: &EventView) -> String {
    let mut line = format!(
        "#{}  {}/{} v{}  {}  {}",
        event.position,
        event.aggregate_type,
        event.aggregate_id,
        event.version,
        event.event_type,
        event
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let fields = [
        ("correlation", &event.correlation_id),
        ("causation", &event.causation_id),
        ("trace", &event.trace_id),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            line.push_str(&format!("  {name}={value}"));
        }
    }
    if let Some(url) = &event.trace_url {
        line.push_str(&format!("  {url}"));
    }
    line.push('\n');
    line
}

/// The library's query for the command line's arguments.
fn query_of(query: &EventsQuery) -> Result<EventQuery, CliError> {
    if let Some(text) = &query.stream {
        let stream = operate::parse_stream(text)?;
        let from_version = query.from.unwrap_or(1);
        return Ok(EventQuery::Stream {
            stream,
            from_version,
        });
    }
    if let Some(correlation) = &query.correlation {
        return Ok(EventQuery::Correlation(correlation.clone()));
    }
    if let Some(from_position) = query.from {
        return Ok(EventQuery::Log { from_position });
    }
    Err(CliError::Usage(
        "give --stream TYPE/ID, --from POSITION or --correlation ID".to_owned(),
    ))
}

pub async fn run(store: &OpenedStore, query: &EventsQuery, json: bool) -> Result<(), CliError> {
    let asked = query_of(query)?;
    let page = operate::read_events(
        &*store.stores.events,
        &asked,
        query.limit as usize,
        query.trace_url.as_deref(),
    )
    .await?;
    if json {
        output::json(&page.events)?;
    } else {
        let text: String = page.events.iter().map(line).collect();
        output::text(&text)?;
    }
    // What was read is printed; then the event that stopped the read is an error.
    match page.unreadable {
        Some(source) => Err(CliError::Store {
            what: "cannot read the next event".to_owned(),
            source,
        }),
        None => Ok(()),
    }
}
