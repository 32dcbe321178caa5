//! The longest stall of each handler: the longest stretch of wall clock during which
//! acknowledged events waited for it and it committed nothing, and the faults that were
//! on meanwhile.
//!
//! Between two commits of a handler (or before its first, or after its last up to the end
//! of the history), the stall starts at the later of the earlier commit and the
//! acknowledgement of the oldest event still waiting at the later commit, and ends there.
//! Its cause is every nemesis active at some point of it, else "none recorded".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use uuid::Uuid;

use super::appends::{AppendOutcome, AppendedEvents};
use super::check::Commit;
use super::expect::Expectations;
use super::op::{Call, OpKind};
use super::reader::History;

/// A stretch during which a handler had work and did none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub handler: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_ms: u64,
    /// Events acknowledged before `end_ms` and not committed before it.
    pub waiting_events: usize,
    /// The first of them acknowledged.
    pub oldest_waiting: Uuid,
    /// No commit ended it: it lasts to the last op of the history.
    pub until_end_of_history: bool,
    /// The faults active during it, by name, in the order they started.
    pub nemeses: Vec<String>,
}

impl Stall {
    /// The nemeses, joined, or "none recorded".
    pub fn cause(&self) -> String {
        if self.nemeses.is_empty() {
            "none recorded".to_owned()
        } else {
            self.nemeses.join(", ")
        }
    }
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handler {} committed nothing for {} ms, at_ms {} to {}{}, while {} events waited \
             (oldest {}); cause: {}",
            self.handler,
            self.duration_ms,
            self.start_ms,
            self.end_ms,
            if self.until_end_of_history {
                " (end of history)"
            } else {
                ""
            },
            self.waiting_events,
            self.oldest_waiting,
            self.cause()
        )
    }
}

/// The longest stall of each handler the test named (that had one), in their order.
pub(super) fn longest_stalls(
    history: &History,
    appends: &AppendedEvents,
    commits: &[Commit<'_>],
    expectations: &Expectations,
) -> Vec<Stall> {
    let end_of_history = history.ops.iter().map(|op| op.at_ms).max().unwrap_or(0);
    let nemeses = nemesis_windows(history);
    expectations
        .handlers
        .iter()
        .filter_map(|expected| {
            let handler = expected.handler.as_str();
            let mut first_commit: HashMap<Uuid, u64> = HashMap::new();
            let mut commit_times: Vec<u64> = Vec::new();
            for commit in commits.iter().filter(|c| c.handler == handler) {
                commit_times.push(commit.at_ms);
                let first = first_commit.entry(commit.event_id).or_insert(commit.at_ms);
                *first = (*first).min(commit.at_ms);
            }
            commit_times.sort_unstable();
            // (acknowledged at, committed at or never, id) of every event it must see.
            let waiting: Vec<(u64, u64, Uuid)> = appends
                .in_order
                .iter()
                .filter(|event| expected.sees.admits(&event.stream))
                .filter_map(|event| match event.outcome {
                    AppendOutcome::Acknowledged { at_ms, .. } => Some((
                        at_ms,
                        first_commit
                            .get(&event.event_id)
                            .copied()
                            .unwrap_or(u64::MAX),
                        event.event_id,
                    )),
                    _ => None,
                })
                .collect();
            let (start_ms, end_ms, oldest_waiting) =
                longest_gap(&waiting, &commit_times, end_of_history)?;
            Some(Stall {
                handler: handler.to_owned(),
                start_ms,
                end_ms,
                duration_ms: end_ms - start_ms,
                waiting_events: waiting
                    .iter()
                    .filter(|&&(acked, committed, _)| acked < end_ms && committed >= end_ms)
                    .count(),
                oldest_waiting,
                until_end_of_history: commit_times.last().is_none_or(|&last| last < end_ms),
                nemeses: active_between(&nemeses, start_ms, end_ms),
            })
        })
        .collect()
}

/// The longest (start, end, oldest waiting event) between commits; ties keep the earliest.
fn longest_gap(
    events: &[(u64, u64, Uuid)],
    commit_times: &[u64],
    end_of_history: u64,
) -> Option<(u64, u64, Uuid)> {
    // Oldest acknowledgement first; an event leaves for good once committed before the
    // gap's end, since the ends only grow.
    let mut by_acknowledgement: BinaryHeap<Reverse<(u64, u64, Uuid)>> =
        events.iter().copied().map(Reverse).collect();
    let gap_ends = commit_times.iter().copied().chain([end_of_history]);
    let gap_starts = [0].into_iter().chain(commit_times.iter().copied());
    let mut longest: Option<(u64, u64, Uuid)> = None;
    for (gap_start, gap_end) in gap_starts.zip(gap_ends) {
        while by_acknowledgement
            .peek()
            .is_some_and(|Reverse((_, committed, _))| *committed < gap_end)
        {
            by_acknowledgement.pop();
        }
        let Some(&Reverse((acknowledged, _, event_id))) = by_acknowledgement.peek() else {
            continue;
        };
        if acknowledged >= gap_end {
            continue;
        }
        let start = acknowledged.max(gap_start);
        if longest.is_none_or(|(s, e, _)| gap_end - start > e - s) {
            longest = Some((start, gap_end, event_id));
        }
    }
    longest
}

/// A fault's stretch: from its start to its stop (or forever), or an instant.
struct NemesisWindow<'h> {
    fault: &'h str,
    from_ms: u64,
    to_ms: u64,
}

fn nemesis_windows(history: &History) -> Vec<NemesisWindow<'_>> {
    let mut windows: Vec<NemesisWindow<'_>> = Vec::new();
    let mut open: HashMap<(&str, u64), usize> = HashMap::new();
    for op in &history.ops {
        let Call::Nemesis { fault } = &op.f else {
            continue;
        };
        match op.kind {
            OpKind::Invoke => {
                open.insert((&op.process, op.seq), windows.len());
                windows.push(NemesisWindow {
                    fault,
                    from_ms: op.at_ms,
                    to_ms: u64::MAX,
                });
            }
            OpKind::Info => windows.push(NemesisWindow {
                fault,
                from_ms: op.at_ms,
                to_ms: op.at_ms,
            }),
            OpKind::Ok | OpKind::Fail => {
                // Its invoke by `completes`, else the oldest open one of that name.
                let started = op
                    .completes
                    .and_then(|seq| open.remove(&(op.process.as_str(), seq)))
                    .or_else(|| {
                        let (&key, &index) = open
                            .iter()
                            .filter(|&(_, &index)| windows[index].fault == fault.as_str())
                            .min_by_key(|&(_, &index)| index)?;
                        open.remove(&key);
                        Some(index)
                    });
                if let Some(index) = started {
                    windows[index].to_ms = op.at_ms;
                }
            }
        }
    }
    windows.sort_by_key(|window| window.from_ms);
    windows
}

fn active_between(windows: &[NemesisWindow<'_>], start_ms: u64, end_ms: u64) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for window in windows {
        if window.from_ms <= end_ms
            && window.to_ms >= start_ms
            && !names.iter().any(|n| n == window.fault)
        {
            names.push(window.fault.to_owned());
        }
    }
    names
}
