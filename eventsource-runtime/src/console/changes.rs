//! The console's changes to a projection: reset, split, rebuild and retire, done by
//! [`operate`](crate::operate) as the command line does them, each only when the body's
//! `confirm` repeats the projection's name (what the page asks the operator to type).

use super::ConsoleError;
use super::State;
use super::action::{ActionBody, Change};
use crate::operate;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::Span;
use crate::telemetry::values::Attr;

/// Makes `change` to the body's projection; returns what it did and how many checkpoints it
/// changed.
pub(super) async fn change(
    change: Change,
    state: &State,
    body: &ActionBody,
    span: &Span,
) -> Result<(String, u64), ConsoleError> {
    let Some(projection) = &body.projection else {
        return Err(ConsoleError::BadRequest(
            "give `projection`; nothing changed".to_owned(),
        ));
    };
    span.set(attr::PROJECTION_NAME, Attr::Str(projection));
    if body.confirm.as_deref() != Some(projection.as_str()) {
        return Err(ConsoleError::BadRequest(format!(
            "give `confirm`: the projection's name again (`{projection}`), as the page asks \
             the operator to type it; nothing changed"
        )));
    }
    let stores = &state.stores;
    match change {
        Change::Reset => {
            let Some(position) = body.position else {
                return Err(ConsoleError::BadRequest(
                    "give `position`, where the projection starts again (0: from the \
                     start); nothing changed"
                        .to_owned(),
                ));
            };
            span.set(attr::EVENT_POSITION, Attr::Int(position as i64));
            let reset = operate::reset(stores, projection, position).await?;
            let moved = reset.checkpoints.len() as u64;
            Ok((
                format!("{projection}: reset to position {position} ({moved} checkpoints)"),
                moved,
            ))
        }
        Change::Split => {
            let Some(segments) = body.segments else {
                return Err(ConsoleError::BadRequest(
                    "give `segments`, how many; nothing changed".to_owned(),
                ));
            };
            let split = operate::split(stores, projection, segments).await?;
            let moved = split.checkpoints.len() as u64;
            Ok((
                format!(
                    "{projection}: split from {} into {} segments ({moved} checkpoints)",
                    split.from, split.to
                ),
                moved,
            ))
        }
        Change::Rebuild => {
            let Some(new) = &body.rebuilt_as else {
                return Err(ConsoleError::BadRequest(
                    "give `as`, the rebuilt projection's name; nothing changed".to_owned(),
                ));
            };
            let rebuild = operate::rebuild(stores, projection, new).await?;
            Ok((
                format!(
                    "{projection}: rebuilt as {} from position {} (head {}); run its handler \
                     under that name",
                    rebuild.rebuilt_as, rebuild.checkpoint, rebuild.head
                ),
                1,
            ))
        }
        Change::Retire => {
            let retired = operate::retire(stores, projection).await?;
            let forgotten = retired.checkpoints.len() as u64;
            Ok((
                format!("{projection}: retired ({forgotten} checkpoints forgotten)"),
                forgotten,
            ))
        }
    }
}
