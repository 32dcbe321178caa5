//! `eventsource status`: every projection, relay and split projection the store knows, with
//! its checkpoint, lag, lease holder or segment owners, and parked events, and who holds the
//! store's high-water mark back (read by `eventsource_runtime::operate`, which the console
//! shares).

use chrono::SecondsFormat;
use eventsource_runtime::operate::{
    self, CheckpointLag, MarkHolderView, OpenedStore, OperateError, StatusReport, StopView,
};
use serde::Serialize;

use crate::args::StatusArgs;
use crate::exit::CliError;
use crate::{output, service_health};

/// What `status` prints: the library's report, and the service's own.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub status: StatusReport,
    /// The running service's own report (`--health-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<serde_json::Value>,
}

impl From<OperateError> for CliError {
    fn from(error: OperateError) -> Self {
        match error {
            OperateError::Store { what, source } => Self::Store { what, source },
            OperateError::NotFound(what) => Self::NotFound(what),
            OperateError::Refused(what) => Self::Refused(what),
            other => Self::Usage(other.to_string()),
        }
    }
}

pub async fn run(store: &OpenedStore, args: &StatusArgs, json: bool) -> Result<(), CliError> {
    let mut report = Report {
        status: operate::status(&store.stores).await?,
        service: None,
    };
    if let Some(url) = &args.health_url {
        report.service = Some(service_health::fetch(url).await?);
    }
    if json {
        return output::json(&report);
    }
    let mut text = as_text(&report.status);
    if let (Some(url), Some(service)) = (&args.health_url, &report.service) {
        text.push('\n');
        text.push_str(&service_health::as_text(url, service));
    }
    output::text(&text)
}

fn as_text(report: &StatusReport) -> String {
    let mut rows = Vec::new();
    let mut stops = Vec::new();
    for p in &report.projections {
        let holder = match (&p.lease, p.segments.len(), &p.stopped) {
            (Some(lease), _, _) => lease.holder.clone(),
            (None, 0, Some(_)) => "- (stopped)".to_owned(),
            (None, 0, None) => "-".to_owned(),
            (None, n, _) => format!("{n} segments"),
        };
        // A split projection's stops are its segments'.
        if let (Some(stop), true) = (&p.stopped, p.segments.is_empty()) {
            stops.push(stop_line(&p.name, stop));
        }
        rows.push(row(&p.name, p.kind, p.checkpoint, p.lag, p.parked, holder));
        for s in &p.segments {
            let owner = match (&s.owner, &s.stopped) {
                (Some(owner), _) if s.expired => format!("{owner} (expired), epoch {}", s.epoch),
                (Some(owner), _) => format!("{owner}, epoch {}", s.epoch),
                (None, Some(_)) => "- (stopped)".to_owned(),
                (None, None) => "-".to_owned(),
            };
            if let Some(stop) = &s.stopped {
                stops.push(stop_line(&s.checkpoint_name, stop));
            }
            let name = format!("  {}", s.segment);
            rows.push(row(&name, "segment", s.checkpoint, s.lag, s.parked, owner));
        }
    }
    let headers = [
        "NAME",
        "KIND",
        "CHECKPOINT",
        "LAG",
        "OLDEST",
        "PARKED",
        "LEASE/OWNER",
    ];
    let mut text = format!("store {}, head {}\n", report.store, report.head);
    if let Some(holder) = &report.mark_holder {
        text.push_str(&mark_line(holder));
        text.push('\n');
    }
    if rows.is_empty() {
        text.push_str("no checkpoints\n");
    } else {
        text.push('\n');
        text.push_str(&output::table(&headers, &rows));
    }
    // Why each stopped runner stopped, under the table: an error is too long for a column.
    if !stops.is_empty() {
        text.push('\n');
    }
    for line in stops {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// `STOPPED orders at 2026-11-28T21:04:05Z: projection `orders` stopped: ...`.
fn stop_line(name: &str, stop: &StopView) -> String {
    format!(
        "STOPPED {name} at {}: {}",
        stop.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        stop.error
    )
}

/// `WARN mark held at #123 by pid 4711 (app stalled-writer, client 10.99.1.2) idle in
/// transaction for 12s`: `WARN` past `store::MARK_HELD_WARN_AFTER`, each part only when
/// known.
fn mark_line(view: &MarkHolderView) -> String {
    let holder = &view.holder;
    let mut line = String::new();
    if view.warn {
        line.push_str("WARN ");
    }
    line.push_str(&format!(
        "mark held at #{} by pid {}",
        holder.position, holder.process_id
    ));
    let known: Vec<String> = [
        holder.application.as_ref().map(|app| format!("app {app}")),
        holder
            .client
            .as_ref()
            .map(|client| format!("client {client}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !known.is_empty() {
        line.push_str(&format!(" ({})", known.join(", ")));
    }
    if let Some(state) = &holder.state {
        line.push(' ');
        line.push_str(state);
    }
    if let Some(held) = view.held_seconds {
        line.push_str(&format!(" for {}", output::age(held)));
    }
    line
}

fn row(
    name: &str,
    kind: &str,
    checkpoint: u64,
    lag: CheckpointLag,
    parked: u64,
    who: String,
) -> Vec<String> {
    let oldest = lag.oldest_age_seconds.map_or("?".to_owned(), output::age);
    vec![
        name.to_owned(),
        kind.to_owned(),
        checkpoint.to_string(),
        lag.events.to_string(),
        oldest,
        parked.to_string(),
        who,
    ]
}
