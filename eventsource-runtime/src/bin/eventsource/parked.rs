//! `eventsource parked list|retry|skip`: a projection's parked events (those its runner could
//! not read and set aside), asking for their retry, and forgetting one.
//!
//! Retrying one needs the projection's own handler, which only the service has: `retry`
//! marks the parked event (`CheckpointStore::request_retry`) and the projection's running
//! runner retries it on its next poll.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::args::ParkedCommand;
use crate::exit::CliError;
use crate::output;
use crate::store::Stores;

#[derive(Debug, Serialize)]
struct Parked {
    position: u64,
    error: String,
    parked_at: DateTime<Utc>,
}

pub async fn run(stores: &Stores, command: ParkedCommand, json: bool) -> Result<(), CliError> {
    match command {
        ParkedCommand::List { name } => list(stores, &name, json).await,
        ParkedCommand::Retry { name, position } => retry(stores, &name, position, json).await,
        ParkedCommand::Skip { name, position } => skip(stores, &name, position, json).await,
    }
}

/// Fails unless the store knows `name` (a checkpoint, or parked events).
async fn known(stores: &Stores, name: &str) -> Result<(), CliError> {
    let checkpoints = &*stores.checkpoints;
    let records = checkpoints
        .checkpoints()
        .await
        .map_err(CliError::store("cannot list the checkpoints"))?;
    if records.iter().any(|r| r.projection == name) {
        return Ok(());
    }
    let parked = checkpoints
        .parked_counts()
        .await
        .map_err(CliError::store("cannot count the parked events"))?;
    if parked.contains_key(name) {
        return Ok(());
    }
    Err(CliError::NotFound(format!(
        "no projection `{name}` in this store (`eventsource status` lists them)"
    )))
}

async fn list(stores: &Stores, name: &str, json: bool) -> Result<(), CliError> {
    known(stores, name).await?;
    let parked: Vec<Parked> = stores
        .checkpoints
        .parked(name)
        .await
        .map_err(CliError::store(format!(
            "cannot list the events `{name}` parked"
        )))?
        .into_iter()
        .map(|p| Parked {
            position: p.position,
            error: p.error,
            parked_at: p.parked_at,
        })
        .collect();
    if json {
        return output::json(&parked);
    }
    let rows: Vec<Vec<String>> = parked
        .iter()
        .map(|p| {
            vec![
                p.position.to_string(),
                p.parked_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                p.error.replace('\n', " "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return output::text(&format!("{name}: no parked events\n"));
    }
    output::text(&output::table(&["POSITION", "PARKED AT", "ERROR"], &rows))
}

async fn retry(
    stores: &Stores,
    name: &str,
    position: Option<u64>,
    json: bool,
) -> Result<(), CliError> {
    known(stores, name).await?;
    let checkpoints = &stores.checkpoints;
    let one = position.is_some();
    let positions = match position {
        Some(position) => vec![position],
        None => checkpoints
            .parked(name)
            .await
            .map_err(CliError::store(format!(
                "cannot list the events `{name}` parked"
            )))?
            .iter()
            .map(|p| p.position)
            .collect(),
    };
    let mut requested = Vec::with_capacity(positions.len());
    for position in positions {
        let marked = checkpoints
            .request_retry(name, position)
            .await
            .map_err(CliError::store(format!(
                "cannot request the retry of event {position} of `{name}`"
            )))?;
        if marked {
            requested.push(position);
        } else if one {
            return Err(CliError::NotFound(format!(
                "`{name}` has no event parked at position {position}"
            )));
        }
    }
    if requested.is_empty() {
        return Err(CliError::NotFound(format!("`{name}` has no parked events")));
    }
    if json {
        return output::json(&serde_json::json!({
            "projection": name,
            "retry_requested": requested,
        }));
    }
    let listed: Vec<String> = requested.iter().map(u64::to_string).collect();
    output::text(&format!(
        "{name}: retry of event(s) {} requested; the running projection retries it on its \
         next poll (`eventsource parked list {name}` shows what is still parked)\n",
        listed.join(", ")
    ))
}

async fn skip(stores: &Stores, name: &str, position: u64, json: bool) -> Result<(), CliError> {
    known(stores, name).await?;
    let removed = stores
        .checkpoints
        .unpark(name, position)
        .await
        .map_err(CliError::store(format!(
            "cannot unpark event {position} of `{name}`"
        )))?;
    if !removed {
        return Err(CliError::NotFound(format!(
            "`{name}` has no event parked at position {position}"
        )));
    }
    if json {
        return output::json(&serde_json::json!({ "projection": name, "skipped": position }));
    }
    output::text(&format!(
        "{name}: event {position} skipped (no longer parked)\n"
    ))
}
