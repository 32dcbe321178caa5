//! NonMonotonic: a stream's events committed out of version order.
//!
//! Two views, since a takeover legitimately replays older events: inside one process run
//! at one epoch, in the run's own order (`seq`, which no clock moves), the first commit of
//! each event must come in version order; and across the whole handler, by clock, so must
//! the first commit of each event anywhere. A re-commit is the duplicate check's business,
//! and an event is reported once per handler.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::anomaly::{Anomaly, OrderScope};
use super::check::Commit;

/// The order anomalies among the certain commits (in history order).
pub(super) fn non_monotonic(commits: &[Commit<'_>]) -> Vec<Anomaly> {
    let certain: Vec<&Commit<'_>> = commits.iter().filter(|c| c.certain).collect();
    let mut reported: HashSet<(&str, Uuid)> = HashSet::new();
    let mut anomalies = Vec::new();

    // Inside a run: (handler, process, epoch) → events committed, and per stream the last.
    let mut committed_in_run: HashSet<(&str, &str, Option<u64>, Uuid)> = HashSet::new();
    let mut last_in_run: HashMap<(&str, &str, Option<u64>, &str), &Commit<'_>> = HashMap::new();
    for &commit in &certain {
        let (process, epoch) = commit.run();
        if !committed_in_run.insert((commit.handler, process, epoch, commit.event_id)) {
            continue;
        }
        let stream_key = (commit.handler, process, epoch, commit.stream);
        if let Some(previous) = last_in_run.insert(stream_key, commit)
            && commit.version <= previous.version
            && reported.insert((commit.handler, commit.event_id))
        {
            anomalies.push(out_of_order(commit, previous, OrderScope::WithinRun));
        }
    }

    // Across the handler: the first commit of each event, per stream.
    let mut committed: HashSet<(&str, Uuid)> = HashSet::new();
    let mut last_first_commit: HashMap<(&str, &str), &Commit<'_>> = HashMap::new();
    for &commit in &certain {
        if !committed.insert((commit.handler, commit.event_id)) {
            continue;
        }
        if let Some(previous) = last_first_commit.insert((commit.handler, commit.stream), commit)
            && commit.version <= previous.version
            && reported.insert((commit.handler, commit.event_id))
        {
            anomalies.push(out_of_order(commit, previous, OrderScope::FirstCommits));
        }
    }
    anomalies
}

fn out_of_order(commit: &Commit<'_>, previous: &Commit<'_>, scope: OrderScope) -> Anomaly {
    Anomaly::NonMonotonic {
        handler: commit.handler.to_owned(),
        stream: commit.stream.to_owned(),
        event_id: commit.event_id,
        version: commit.version,
        after_event_id: previous.event_id,
        after_version: previous.version,
        scope,
        committed: commit.site(),
    }
}
