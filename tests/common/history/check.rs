//! The checker: what became of each append (`appends`), what each handler committed, and
//! the anomalies between the two: lost writes, unexpected and aborted reads and stale
//! epochs here; duplicates (`delivery`), order (`order`) and stalls (`stall`) apart.
//!
//! A commit is certain (`HandleCommit` `ok`) or maybe (`info`), as Jepsen: a maybe commit
//! counts as the handler having seen the event, never as a second handling.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::anomaly::{Anomaly, CommitSite, StaleWrite};
use super::appends::{AppendOutcome, AppendedEvents};
use super::delivery::duplicates;
use super::expect::Expectations;
use super::op::{Call, OpKind};
use super::order::non_monotonic;
use super::reader::History;
use super::report::Report;
use super::stall::longest_stalls;

/// Checks `history` against what the test expects of its handlers.
pub fn check(history: &History, expectations: &Expectations) -> Report {
    let appends = AppendedEvents::of(history);
    let commits = commits_of(history);
    let mut anomalies = lost_writes(&appends, &commits, expectations);
    anomalies.extend(duplicates(&commits, &published(history), expectations));
    anomalies.extend(unexpected_and_aborted_reads(&appends, &commits));
    anomalies.extend(stale_epoch_writes(history, &commits));
    anomalies.extend(non_monotonic(&commits).into_iter().filter(|anomaly| {
        expectations
            .expectation_of(anomaly.handler())
            .is_none_or(|expected| expected.ordered)
    }));
    let stalls = longest_stalls(history, &appends, &commits, expectations);
    Report::new(history, anomalies, stalls)
}

/// A `HandleCommit` that happened (`ok`) or may have (`info`).
#[derive(Clone, Debug)]
pub(super) struct Commit<'h> {
    pub handler: &'h str,
    pub event_id: Uuid,
    pub stream: &'h str,
    pub version: u64,
    pub segment: Option<u32>,
    pub epoch: Option<u64>,
    pub process: &'h str,
    pub seq: u64,
    pub at_ms: u64,
    pub certain: bool,
}

impl Commit<'_> {
    pub fn site(&self) -> CommitSite {
        CommitSite {
            process: self.process.to_owned(),
            seq: self.seq,
            at_ms: self.at_ms,
            segment: self.segment,
            epoch: self.epoch,
        }
    }

    /// The process run and epoch that committed: a change of it is a takeover.
    pub fn run(&self) -> (&str, Option<u64>) {
        (self.process, self.epoch)
    }
}

/// Every commit, in history order.
fn commits_of(history: &History) -> Vec<Commit<'_>> {
    history
        .ops
        .iter()
        .filter_map(|op| match (&op.f, op.kind) {
            (Call::HandleCommit(h), OpKind::Ok | OpKind::Info) => Some(Commit {
                handler: &h.handler,
                event_id: h.event_id,
                stream: &h.stream,
                version: h.version,
                segment: h.segment,
                epoch: h.epoch,
                process: &op.process,
                seq: op.seq,
                at_ms: op.at_ms,
                certain: op.kind == OpKind::Ok,
            }),
            _ => None,
        })
        .collect()
}

/// How many times each event went to the broker: publishes acknowledged (`ok`) or maybe
/// sent (`info`).
fn published(history: &History) -> HashMap<Uuid, usize> {
    let mut times = HashMap::new();
    for op in &history.ops {
        if let (Call::Publish { event_ids }, OpKind::Ok | OpKind::Info) = (&op.f, op.kind) {
            for id in event_ids {
                *times.entry(*id).or_insert(0) += 1;
            }
        }
    }
    times
}

fn lost_writes(
    appends: &AppendedEvents,
    commits: &[Commit<'_>],
    expectations: &Expectations,
) -> Vec<Anomaly> {
    let seen: HashSet<(&str, Uuid)> = commits.iter().map(|c| (c.handler, c.event_id)).collect();
    let mut lost = Vec::new();
    for expected in &expectations.handlers {
        for event in &appends.in_order {
            let AppendOutcome::Acknowledged { by, at_ms } = &event.outcome else {
                continue;
            };
            if expected.sees.admits(&event.stream)
                && !seen.contains(&(expected.handler.as_str(), event.event_id))
            {
                lost.push(Anomaly::LostWrite {
                    handler: expected.handler.clone(),
                    event_id: event.event_id,
                    stream: event.stream.clone(),
                    appended_by: by.clone(),
                    acknowledged_at_ms: *at_ms,
                });
            }
        }
    }
    lost
}

/// Events committed that no append named, or whose appends all failed: once per handler.
fn unexpected_and_aborted_reads(appends: &AppendedEvents, commits: &[Commit<'_>]) -> Vec<Anomaly> {
    let mut reported: HashSet<(&str, Uuid)> = HashSet::new();
    let mut anomalies = Vec::new();
    for commit in commits {
        let anomaly = match appends.get(&commit.event_id).map(|event| &event.outcome) {
            None => Anomaly::Unexpected {
                handler: commit.handler.to_owned(),
                event_id: commit.event_id,
                committed: commit.site(),
            },
            Some(AppendOutcome::Failed { by, at_ms }) => Anomaly::AbortedRead {
                handler: commit.handler.to_owned(),
                event_id: commit.event_id,
                committed: commit.site(),
                failed_by: by.clone(),
                failed_at_ms: *at_ms,
            },
            Some(_) => continue,
        };
        if reported.insert((commit.handler, commit.event_id)) {
            anomalies.push(anomaly);
        }
    }
    anomalies
}

/// Commits and checkpoints at an epoch, later (by clock) than another process's claim of
/// the same handler's segment at a higher epoch.
fn stale_epoch_writes(history: &History, commits: &[Commit<'_>]) -> Vec<Anomaly> {
    let claims: Vec<(&str, u32, u64, &str, u64)> = history
        .ops
        .iter()
        .filter_map(|op| match &op.f {
            Call::Claim {
                handler,
                segment,
                epoch,
            } if op.kind == OpKind::Ok => Some((
                handler.as_str(),
                *segment,
                *epoch,
                op.process.as_str(),
                op.at_ms,
            )),
            _ => None,
        })
        .collect();
    let checkpoints = history.ops.iter().filter_map(|op| match &op.f {
        Call::CheckpointSave {
            handler,
            position,
            segment: Some(segment),
            epoch: Some(epoch),
        } if op.kind == OpKind::Ok => Some((
            handler.as_str(),
            *segment,
            *epoch,
            StaleWrite::Checkpoint {
                position: *position,
            },
            op.process.as_str(),
            op.at_ms,
        )),
        _ => None,
    });
    let commit_writes = commits.iter().filter(|c| c.certain).filter_map(|c| {
        Some((
            c.handler,
            c.segment?,
            c.epoch?,
            StaleWrite::Commit {
                event_id: c.event_id,
            },
            c.process,
            c.at_ms,
        ))
    });
    let mut anomalies = Vec::new();
    for (handler, segment, epoch, write, process, at_ms) in commit_writes.chain(checkpoints) {
        let fencing_claim = claims
            .iter()
            .filter(|&&(h, s, e, p, claimed_at)| {
                h == handler && s == segment && e > epoch && p != process && claimed_at < at_ms
            })
            .min_by_key(|claim| claim.4);
        if let Some(&(_, _, claimed_epoch, claimed_by, claimed_at_ms)) = fencing_claim {
            anomalies.push(Anomaly::StaleEpochWrite {
                handler: handler.to_owned(),
                segment,
                epoch,
                write,
                process: process.to_owned(),
                at_ms,
                claimed_by: claimed_by.to_owned(),
                claimed_epoch,
                claimed_at_ms,
            });
        }
    }
    anomalies
}
