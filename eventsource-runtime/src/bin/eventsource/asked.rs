//! What `causation ID` was asked about: a correlation id, or an event's id (whose
//! correlation's tree is drawn with the event marked).

use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::lineage::find_event;
use uuid::Uuid;

use crate::args::CausationQuery;
use crate::exit::CliError;
use crate::store::Stores;

/// The correlation id to draw, the event to mark, and the correlation's events in this store.
/// An id that names no correlation (or with `--event`) is looked up as an event's id; an
/// event without a correlation id is drawn alone, under its own id.
pub async fn events_of(
    stores: &Stores,
    query: &CausationQuery,
) -> Result<(String, Option<Uuid>, Vec<EventEnvelope>), CliError> {
    let id = query.correlation.trim();
    let as_uuid = Uuid::parse_str(id).ok();
    if !query.event {
        let events = stores
            .events
            .events_by_correlation(id)
            .await
            .map_err(CliError::store(format!(
                "cannot read the events of correlation {id}"
            )))?;
        if !events.is_empty() {
            // A command's id is often the correlation id: an event of that id is marked too.
            return Ok((id.to_owned(), as_uuid, events));
        }
    }
    let Some(event_id) = as_uuid else {
        return Err(if query.event {
            CliError::Usage(format!("`{id}` is not an event id (a UUID)"))
        } else {
            CliError::NotFound(format!("no event has the correlation id `{id}`"))
        });
    };
    let found = find_event(&*stores.events, event_id)
        .await
        .map_err(CliError::store(format!("cannot look for event {event_id}")))?;
    let Some(event) = found else {
        return Err(CliError::NotFound(format!(
            "no event has the id or the correlation id `{id}`"
        )));
    };
    let Some(correlation) = event.metadata.correlation_id().map(str::to_owned) else {
        return Ok((event_id.to_string(), Some(event_id), vec![event]));
    };
    let events = stores
        .events
        .events_by_correlation(&correlation)
        .await
        .map_err(CliError::store(format!(
            "cannot read the events of correlation {correlation}"
        )))?;
    Ok((correlation, Some(event_id), events))
}
