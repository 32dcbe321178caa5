//! The console's actions: each a `POST /api/actions/{action}` with a JSON body, allowed by
//! the admin token only, logged with who and what, and traced (one span
//! `eventsource.console.{action}`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State as Extract};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::action::{ACTIONS, Action, ActionBody};
use super::auth::{self, Remote};
use super::{ConsoleError, State};
use crate::operate;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::log::{log_info, log_warn};
use crate::telemetry::otel::{Span, SpanStart};
use crate::telemetry::values::{Attr, Chain, Kind, SpanName};

/// The holder's label, if this request may act.
fn authorize<'s>(state: &'s State, headers: &HeaderMap) -> Result<&'s str, ConsoleError> {
    if state.read_only {
        return Err(ConsoleError::Forbidden(
            "the console is read-only: actions are off; nothing changed".to_owned(),
        ));
    }
    if state.tokens.is_empty() {
        return Err(ConsoleError::Forbidden(
            "no admin token is configured (--admin-token or EVENTSOURCE_ADMIN_TOKEN): \
             actions are off; nothing changed"
                .to_owned(),
        ));
    }
    auth::same_origin(headers)?;
    auth::holder_of(&state.tokens, headers)
}

pub(super) async fn act(
    Extract(state): Extract<State>,
    Path(name): Path<String>,
    Remote(remote): Remote,
    headers: HeaderMap,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Json<Value>, ConsoleError> {
    let Some(action) = Action::named(&name) else {
        return Err(ConsoleError::NotFound(format!(
            "no action `{name}`: {ACTIONS}"
        )));
    };
    let client = remote.map(|address| address.ip().to_string());
    let mut start = SpanStart::new(
        true,
        SpanName::PrefixedStatic(attr::SPAN_CONSOLE_ACTION_PREFIX, action.name()),
        Kind::Internal,
    );
    if let Some(client) = &client {
        start.str(attr::CLIENT_ADDRESS, client);
    }
    let span = start.start();
    let client = client.as_deref().unwrap_or("unknown");
    let mut actor = None;
    let outcome = span
        .run(async {
            let holder = authorize(&state, &headers)?;
            actor = Some(holder);
            span.set(attr::CONSOLE_ACTOR, Attr::Str(holder));
            let Json(body) = body.map_err(|rejection| {
                ConsoleError::BadRequest(format!(
                    "the action takes a JSON body ({rejection}); nothing changed"
                ))
            })?;
            run(action, &state, &body, &span).await
        })
        .await;
    let actor = actor.unwrap_or("-");
    match outcome {
        Ok((what, affected)) => {
            span.set(attr::CONSOLE_AFFECTED, Attr::Int(affected as i64));
            log_info!(
                action = action.name(),
                actor,
                client,
                what = what.as_str(),
                affected,
                "console action done"
            );
            Ok(Json(
                json!({ "action": action.name(), "what": what, "affected": affected }),
            ))
        }
        Err(error) => {
            span.record_error(error.kind(), &Chain(&error));
            log_warn!(
                action = action.name(),
                actor,
                client,
                error = %Chain(&error),
                "console action refused or failed"
            );
            Err(error)
        }
    }
}

/// Does `action`; returns what it did and how many things it changed.
async fn run(
    action: Action,
    state: &State,
    body: &ActionBody,
    span: &Span,
) -> Result<(String, u64), ConsoleError> {
    match action {
        Action::RetryParked | Action::SkipParked => {
            let (Some(projection), Some(position)) = (&body.projection, body.position) else {
                return Err(ConsoleError::BadRequest(
                    "give `projection` and `position`; nothing changed".to_owned(),
                ));
            };
            span.set(attr::PROJECTION_NAME, Attr::Str(projection));
            span.set(attr::EVENT_POSITION, Attr::Int(position as i64));
            let stores = &state.stores;
            let done = if let Action::RetryParked = action {
                operate::retry_parked(stores, projection, Some(position)).await?;
                "retry requested (the running runner retries it on its next poll)"
            } else {
                operate::skip_parked(stores, projection, position).await?;
                "skipped"
            };
            Ok((format!("{projection}: event {position} {done}"), 1))
        }
        Action::Change(change) => super::changes::change(change, state, body, span).await,
        Action::RequeueDeadLetters | Action::PurgeDeadLetters => {
            let Some(name) = &body.queue else {
                return Err(ConsoleError::BadRequest(
                    "give `queue`; nothing changed".to_owned(),
                ));
            };
            let queue = super::reads::queue_named(state, name)?;
            let _turn = state.dead_letter_turn.lock().await;
            span.set(attr::MESSAGING_SYSTEM, Attr::Static(queue.system()));
            span.set(attr::MESSAGING_DESTINATION_NAME, Attr::Str(name));
            if let Action::RequeueDeadLetters = action {
                let moved = queue.requeue().await.map_err(ConsoleError::broker(format!(
                    "cannot requeue the dead letters of `{name}`"
                )))?;
                Ok((format!("{name}: {moved} dead letters requeued"), moved))
            } else {
                let purged = queue.purge().await.map_err(ConsoleError::broker(format!(
                    "cannot purge the dead letters of `{name}`"
                )))?;
                Ok((format!("{name}: {purged} dead letters purged"), purged))
            }
        }
    }
}
