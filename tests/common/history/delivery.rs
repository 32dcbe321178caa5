//! Duplicates: an event committed again by the same handler, judged by the handler's
//! delivery.
//!
//! Exactly once allows no second commit. At least once allows one after a takeover only:
//! the repeated commit comes from another process run or another epoch than the commit
//! before it (a process that died or lost its segment, and whoever took over replayed from
//! the checkpoint), and that takeover replays at most `window` events; the events it
//! replayed past the window are reported. An event the relay published as many times as it
//! was committed is no duplicate at all: each message was handled once (a relay publishes at
//! least once).

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::anomaly::{Anomaly, DuplicateReason};
use super::check::Commit;
use super::expect::{Delivery, Expectations};

/// The duplicates among the certain commits (in history order), once per handler and event.
pub(super) fn duplicates(
    commits: &[Commit<'_>],
    published: &HashMap<Uuid, usize>,
    expectations: &Expectations,
) -> Vec<Anomaly> {
    let mut by_event: HashMap<(&str, Uuid), Vec<&Commit<'_>>> = HashMap::new();
    let mut keys_in_order = Vec::new();
    for commit in commits.iter().filter(|c| c.certain) {
        let key = (commit.handler, commit.event_id);
        by_event
            .entry(key)
            .or_insert_with(|| {
                keys_in_order.push(key);
                Vec::new()
            })
            .push(commit);
    }

    let mut anomalies = Vec::new();
    let mut reported: HashSet<(&str, Uuid)> = HashSet::new();
    // Per takeover (handler, the run that committed again, its segment): the events it
    // committed again, with the `seq` of that commit in the run.
    let mut replays: HashMap<Takeover<'_>, Vec<(u64, Uuid)>> = HashMap::new();
    let mut takeovers_in_order = Vec::new();
    for key in keys_in_order {
        let event_commits = &by_event[&key];
        if event_commits.len() < 2 {
            continue;
        }
        let (handler, event_id) = key;
        let delivery = expectations.delivery_of(handler);
        let duplicate = |reason| Anomaly::Duplicate {
            handler: handler.to_owned(),
            event_id,
            delivery,
            reason,
            commits: event_commits.iter().map(|c| c.site()).collect(),
        };
        match delivery {
            Delivery::ExactlyOnce => {
                anomalies.push(duplicate(DuplicateReason::ExactlyOnce));
                reported.insert(key);
            }
            Delivery::AtLeastOnce { .. } => {
                let published = published.get(&event_id).copied().unwrap_or(0);
                if published >= event_commits.len() {
                    continue;
                }
                let mut pairs = event_commits.windows(2);
                if pairs.any(|pair| pair[0].run() == pair[1].run()) {
                    anomalies.push(duplicate(DuplicateReason::NoTakeover { published }));
                    reported.insert(key);
                    continue;
                }
                for again in &event_commits[1..] {
                    let takeover = Takeover {
                        handler,
                        process: again.process,
                        segment: again.segment,
                        epoch: again.epoch,
                    };
                    let events = replays.entry(takeover).or_insert_with(|| {
                        takeovers_in_order.push(takeover);
                        Vec::new()
                    });
                    if !events.iter().any(|&(_, id)| id == event_id) {
                        events.push((again.seq, event_id));
                    }
                }
            }
        }
    }

    for takeover in takeovers_in_order {
        let Delivery::AtLeastOnce { window } = expectations.delivery_of(takeover.handler) else {
            continue;
        };
        let mut replayed = replays[&takeover].clone();
        replayed.sort_unstable();
        let rehandled = replayed.len() as u64;
        for &(_, event_id) in replayed
            .iter()
            .skip(usize::try_from(window).unwrap_or(usize::MAX))
        {
            if !reported.insert((takeover.handler, event_id)) {
                continue;
            }
            anomalies.push(Anomaly::Duplicate {
                handler: takeover.handler.to_owned(),
                event_id,
                delivery: Delivery::AtLeastOnce { window },
                reason: DuplicateReason::BeyondWindow {
                    takeover_process: takeover.process.to_owned(),
                    rehandled,
                    window,
                },
                commits: by_event[&(takeover.handler, event_id)]
                    .iter()
                    .map(|c| c.site())
                    .collect(),
            });
        }
    }
    anomalies
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Takeover<'h> {
    handler: &'h str,
    process: &'h str,
    segment: Option<u32>,
    epoch: Option<u64>,
}
