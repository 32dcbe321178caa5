//! `eventsource parked list|retry|skip`: a projection's parked events (those its runner could
//! not read and set aside), asking for their retry, and forgetting one (`operate`'s
//! `parked_events`, `retry_parked` and `skip_parked`, printed).

use chrono::SecondsFormat;
use eventsource_runtime::operate;

use crate::args::ParkedCommand;
use crate::exit::CliError;
use crate::output;
use eventsource_runtime::operate::{OpenedStore, Stores};

pub async fn run(store: &OpenedStore, command: ParkedCommand, json: bool) -> Result<(), CliError> {
    let stores = &store.stores;
    match command {
        ParkedCommand::List { name } => list(stores, &name, json).await,
        ParkedCommand::Retry { name, position } => retry(stores, &name, position, json).await,
        ParkedCommand::Skip { name, position } => skip(stores, &name, position, json).await,
    }
}

async fn list(stores: &Stores, name: &str, json: bool) -> Result<(), CliError> {
    let parked = operate::parked_events(stores, name).await?;
    if json {
        return output::json(&parked);
    }
    let rows: Vec<Vec<String>> = parked
        .iter()
        .map(|p| {
            vec![
                p.position.to_string(),
                p.parked_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                if p.retry_requested { "requested" } else { "-" }.to_owned(),
                p.error.replace('\n', " "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return output::text(&format!("{name}: no parked events\n"));
    }
    output::text(&output::table(
        &["POSITION", "PARKED AT", "RETRY", "ERROR"],
        &rows,
    ))
}

async fn retry(
    stores: &Stores,
    name: &str,
    position: Option<u64>,
    json: bool,
) -> Result<(), CliError> {
    let requested = operate::retry_parked(stores, name, position).await?;
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
    operate::skip_parked(stores, name, position).await?;
    if json {
        return output::json(&serde_json::json!({ "projection": name, "skipped": position }));
    }
    output::text(&format!(
        "{name}: event {position} skipped (no longer parked)\n"
    ))
}
