//! The page's JSON reads: settings, status, parked events, dead letters, events, causation
//! trees. Each validates what it is given (a 4xx with the reason otherwise) and changes
//! nothing.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as Extract};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleError, State, svg};
use crate::bus::{DeadLetterEntry, DeadLetterQueue};
use crate::operate::{self, EventQuery, EventView};
use crate::store::EventStore;

/// At most this many events per page of the stream browser.
const MAX_EVENTS: usize = 500;
/// At most this many dead letters listed per queue.
const MAX_LETTERS: usize = 50;
/// A correlation id longer than this is not one.
const MAX_ID: usize = 256;

/// A query string whose values are read as text (numbers parsed here, with a clear error).
fn query<T>(given: Result<Query<T>, QueryRejection>) -> Result<T, ConsoleError> {
    given
        .map(|Query(query)| query)
        .map_err(|rejection| ConsoleError::BadRequest(format!("malformed query: {rejection}")))
}

fn number(name: &str, text: &str) -> Result<u64, ConsoleError> {
    text.trim().parse().map_err(|_| {
        ConsoleError::BadRequest(format!("`{name}` must be a whole number, not `{text}`"))
    })
}

pub(super) async fn config(Extract(state): Extract<State>) -> Json<Value> {
    let queues: Vec<Value> = state
        .queues
        .iter()
        .map(|queue| json!({ "name": queue.location(), "system": queue.system() }))
        .collect();
    Json(json!({
        "store": state.stores.events.system_name(),
        "read_only": state.read_only,
        "actions": state.actions_on(),
        "admin_token_configured": !state.tokens.is_empty(),
        "trace_links": state.trace_url.is_some(),
        "dead_letter_queues": queues,
    }))
}

pub(super) async fn status(
    Extract(state): Extract<State>,
) -> Result<Json<operate::StatusReport>, ConsoleError> {
    Ok(Json(operate::status(&state.stores).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct ProjectionQuery {
    projection: Option<String>,
}

pub(super) async fn parked(
    Extract(state): Extract<State>,
    given: Result<Query<ProjectionQuery>, QueryRejection>,
) -> Result<Json<Value>, ConsoleError> {
    let name = query(given)?
        .projection
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ConsoleError::BadRequest("give `projection`".to_owned()))?;
    let parked = operate::parked_events(&state.stores, &name).await?;
    Ok(Json(json!({ "projection": name, "parked": parked })))
}

#[derive(Debug, Deserialize)]
pub(super) struct QueueQuery {
    queue: Option<String>,
}

/// A dead letter as listed.
fn letter_view(entry: &DeadLetterEntry) -> Value {
    if let Some(letter) = entry.as_failed() {
        let event = &letter.message.event;
        return json!({
            "message_id": letter.message.message_id.to_string(),
            "event_id": event.event_id.to_string(),
            "event_type": event.event_type.to_string(),
            "stream": format!("{}/{}", event.stream.aggregate_type(), event.stream.aggregate_id()),
            "position": event.position,
            "correlation_id": event.metadata.correlation_id(),
            "trace_id": event.metadata.trace_id(),
            "handler": letter.handler,
            "attempts": letter.attempts,
            "error": letter.error,
        });
    }
    match entry.as_undecodable() {
        Some(letter) => json!({
            "message_id": letter.message_id,
            "undecodable": true,
            "error": letter.reason,
            "bytes": letter.body.len(),
        }),
        None => json!({ "error": "a dead letter of a kind this console does not know" }),
    }
}

pub(super) async fn dead_letters(
    Extract(state): Extract<State>,
    given: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Value>, ConsoleError> {
    let wanted = query(given)?.queue;
    if let Some(name) = &wanted {
        queue_named(&state, name)?;
    }
    let mut queues = Vec::new();
    let _turn = state.dead_letter_turn.lock().await;
    for queue in &state.queues {
        let name = queue.location();
        if wanted.as_ref().is_some_and(|wanted| *wanted != name) {
            continue;
        }
        let letters = queue
            .list(MAX_LETTERS)
            .await
            .map_err(ConsoleError::broker(format!(
                "cannot list the dead letters of `{name}`"
            )))?;
        let letters: Vec<Value> = letters.iter().map(letter_view).collect();
        queues.push(json!({ "queue": name, "system": queue.system(), "letters": letters }));
    }
    Ok(Json(json!({ "queues": queues })))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    stream: Option<String>,
    from: Option<String>,
    correlation: Option<String>,
    limit: Option<String>,
}

pub(super) async fn events(
    Extract(state): Extract<State>,
    given: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ConsoleError> {
    let given = query(given)?;
    let store = &*state.stores.events;
    let limit = match &given.limit {
        Some(text) => usize::try_from(number("limit", text)?).unwrap_or(MAX_EVENTS),
        None => 50,
    };
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ConsoleError::BadRequest(format!(
            "`limit` must be 1 to {MAX_EVENTS}"
        )));
    }
    let from = given.from.as_deref().filter(|text| !text.trim().is_empty());
    let from = from.map(|text| number("from", text)).transpose()?;
    let stream = given
        .stream
        .as_deref()
        .filter(|text| !text.trim().is_empty());
    let correlation = given
        .correlation
        .as_deref()
        .filter(|text| !text.trim().is_empty());
    let asked = match (stream, correlation, from) {
        (Some(text), None, from) => {
            let text = text.trim();
            let stream = operate::parse_stream(text)?;
            let version = store
                .stream_version(&stream)
                .await
                .map_err(ConsoleError::store(format!("cannot read stream `{text}`")))?;
            if version == 0 {
                return Err(ConsoleError::NotFound(format!("no stream `{text}`")));
            }
            let from_version = from.unwrap_or(1).max(1);
            if from_version > version {
                return Err(ConsoleError::BadRequest(format!(
                    "version {from_version} is past stream `{text}`'s last ({version})"
                )));
            }
            EventQuery::Stream {
                stream,
                from_version,
            }
        }
        (None, Some(id), None) => EventQuery::Correlation(correlation_id(id)?),
        (None, None, Some(from_position)) => {
            let head = store
                .head_position()
                .await
                .map_err(ConsoleError::store("cannot read the store's head"))?
                .unwrap_or(0);
            if from_position > head {
                return Err(ConsoleError::BadRequest(format!(
                    "position {from_position} is past the store's head ({head})"
                )));
            }
            EventQuery::Log { from_position }
        }
        _ => {
            return Err(ConsoleError::BadRequest(
                "give `stream` (TYPE/ID, with `from` a version), `from` (a position in the \
                 log) or `correlation`"
                    .to_owned(),
            ));
        }
    };
    let page = operate::read_events(store, &asked, limit, state.trace_url.as_deref()).await?;
    let unreadable = page
        .unreadable
        .map(|error| crate::telemetry::values::Chain(&error).to_string());
    let events: &[EventView] = &page.events;
    Ok(Json(json!({ "events": events, "unreadable": unreadable })))
}

/// A correlation id as given, if it can be one.
fn correlation_id(text: &str) -> Result<String, ConsoleError> {
    let id = text.trim();
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(ConsoleError::BadRequest(format!(
            "malformed correlation or event id: give 1 to {MAX_ID} printable characters"
        )));
    }
    Ok(id.to_owned())
}

#[derive(Debug, Deserialize)]
pub(super) struct CausationQuery {
    correlation: Option<String>,
}

pub(super) async fn causation(
    Extract(state): Extract<State>,
    given: Result<Query<CausationQuery>, QueryRejection>,
) -> Result<Json<Value>, ConsoleError> {
    let given = query(given)?.correlation.unwrap_or_default();
    let id = correlation_id(&given)?;
    let others: Vec<&dyn EventStore> = state.other_stores.iter().map(|store| &**store).collect();
    let tree = operate::causation_tree_of(&*state.stores.events, &others, &id, false).await?;
    let nodes = operate::drawn_nodes(&tree, state.trace_url.as_deref());
    let drawing = svg::draw(&tree.correlation_id, &nodes);
    Ok(Json(json!({
        "correlation": tree.correlation_id,
        "marked": tree.marked,
        "events": tree.len(),
        "nodes": nodes,
        "svg": drawing,
        "notes": tree.notes,
    })))
}

/// The dead-letter queue named `name`.
pub(super) fn queue_named<'s>(
    state: &'s State,
    name: &str,
) -> Result<&'s dyn DeadLetterQueue, ConsoleError> {
    state
        .queues
        .iter()
        .find(|queue| queue.location() == name)
        .map(|queue| &**queue)
        .ok_or_else(|| ConsoleError::NotFound(format!("no dead-letter queue `{name}` here")))
}
