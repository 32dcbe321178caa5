//! What became of each appended event, over all the attempts that named it, with
//! Jepsen's certainty: acknowledged (some attempt `ok`), failed (every attempt `fail`ed), or
//! indeterminate (an `info`, or an `invoke` never completed: it may be in the store).

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::op::{Call, OpKind};
use super::reader::History;

/// How an event's appends ended, over all attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum AppendOutcome {
    Acknowledged { by: String, at_ms: u64 },
    Indeterminate,
    Failed { by: String, at_ms: u64 },
}

#[derive(Clone, Debug)]
pub(super) struct AppendedEvent {
    pub event_id: Uuid,
    pub stream: String,
    pub outcome: AppendOutcome,
}

/// Every event an append named, in the order they first appear.
pub(super) struct AppendedEvents {
    pub in_order: Vec<AppendedEvent>,
    index: HashMap<Uuid, usize>,
}

impl AppendedEvents {
    pub fn of(history: &History) -> Self {
        #[derive(Default)]
        struct Evidence {
            acknowledged: Option<(String, u64)>,
            maybe_written: bool,
            failed: Option<(String, u64)>,
        }
        let mut order: Vec<(Uuid, String)> = Vec::new();
        let mut evidence: HashMap<Uuid, Evidence> = HashMap::new();
        let mut invoked: Vec<(&str, u64, &[Uuid])> = Vec::new();
        let mut failed_invokes: HashSet<(&str, u64)> = HashSet::new();
        for op in &history.ops {
            let Call::Append {
                stream, event_ids, ..
            } = &op.f
            else {
                continue;
            };
            for id in event_ids {
                let seen = evidence.entry(*id).or_insert_with(|| {
                    order.push((*id, stream.clone()));
                    Evidence::default()
                });
                let by = || (op.process.clone(), op.at_ms);
                match op.kind {
                    OpKind::Invoke => {}
                    OpKind::Ok => {
                        seen.acknowledged.get_or_insert_with(by);
                    }
                    OpKind::Fail => {
                        seen.failed.get_or_insert_with(by);
                    }
                    OpKind::Info => seen.maybe_written = true,
                }
            }
            match (op.kind, op.completes) {
                (OpKind::Invoke, _) => invoked.push((&op.process, op.seq, event_ids)),
                (OpKind::Fail, Some(invoke)) => {
                    failed_invokes.insert((&op.process, invoke));
                }
                _ => {}
            }
        }
        // An attempt never completed, or not known to have failed, may have written.
        for (process, seq, ids) in invoked {
            if !failed_invokes.contains(&(process, seq)) {
                for id in ids {
                    if let Some(seen) = evidence.get_mut(id) {
                        seen.maybe_written = true;
                    }
                }
            }
        }
        let in_order: Vec<AppendedEvent> = order
            .into_iter()
            .map(|(event_id, stream)| {
                let seen = evidence.remove(&event_id).unwrap_or_default();
                let outcome = match (seen.acknowledged, seen.maybe_written, seen.failed) {
                    (Some((by, at_ms)), _, _) => AppendOutcome::Acknowledged { by, at_ms },
                    (None, false, Some((by, at_ms))) => AppendOutcome::Failed { by, at_ms },
                    _ => AppendOutcome::Indeterminate,
                };
                AppendedEvent {
                    event_id,
                    stream,
                    outcome,
                }
            })
            .collect();
        let index = in_order
            .iter()
            .enumerate()
            .map(|(i, event)| (event.event_id, i))
            .collect();
        Self { in_order, index }
    }

    pub fn get(&self, event_id: &Uuid) -> Option<&AppendedEvent> {
        self.index.get(event_id).map(|&i| &self.in_order[i])
    }
}
