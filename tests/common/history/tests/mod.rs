//! The checker's own tests: histories built by hand, each holding one anomaly (or none),
//! and files written and read back.

mod anomalies;
mod delivery;
mod files;
mod stalls;

use std::collections::HashMap;

use uuid::Uuid;

use super::{
    Anomaly, Call, Delivery, EventFilter, Expectations, Handling, History, Op, OpKind, Report,
    check,
};

/// Event `n`, the same in every run so that failures read the same.
fn event(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A history written op by op, each process's `seq` counted for it.
#[derive(Default)]
struct Script {
    ops: Vec<Op>,
    next_seq: HashMap<String, u64>,
}

impl Script {
    fn op(
        &mut self,
        process: &str,
        at_ms: u64,
        kind: OpKind,
        completes: Option<u64>,
        f: Call,
    ) -> u64 {
        let next = self.next_seq.entry(process.to_owned()).or_insert(0);
        let seq = *next;
        *next += 1;
        self.ops.push(Op {
            process: process.to_owned(),
            seq,
            at_ms,
            kind,
            completes,
            f,
        });
        seq
    }

    /// An append invoked at `at_ms` and completed one ms later with `outcome` (an `Invoke`
    /// outcome: never completed).
    fn append(&mut self, process: &str, at_ms: u64, stream: &str, ids: &[Uuid], outcome: OpKind) {
        let f = Call::Append {
            stream: stream.to_owned(),
            event_ids: ids.to_vec(),
            positions: None,
        };
        let invoke = self.op(process, at_ms, OpKind::Invoke, None, f.clone());
        if outcome != OpKind::Invoke {
            self.op(process, at_ms + 1, outcome, Some(invoke), f);
        }
    }

    fn commit(
        &mut self,
        process: &str,
        at_ms: u64,
        handler: &str,
        id: Uuid,
        stream: &str,
        version: u64,
    ) {
        self.commit_at(process, at_ms, handling(handler, id, stream, version, None));
    }

    /// A handler's start at `at_ms - 1` and its commit at `at_ms`, under `claim` (segment,
    /// epoch) if any.
    fn commit_at(&mut self, process: &str, at_ms: u64, handling: Handling) {
        let start = self.op(
            process,
            at_ms - 1,
            OpKind::Invoke,
            None,
            Call::HandleStart(handling.clone()),
        );
        self.op(
            process,
            at_ms,
            OpKind::Ok,
            Some(start),
            Call::HandleCommit(handling),
        );
    }

    fn claim(&mut self, process: &str, at_ms: u64, handler: &str, segment: u32, epoch: u64) {
        let f = Call::Claim {
            handler: handler.to_owned(),
            segment,
            epoch,
        };
        self.op(process, at_ms, OpKind::Ok, None, f);
    }

    fn nemesis(&mut self, from_ms: u64, to_ms: u64, fault: &str) {
        let f = Call::Nemesis {
            fault: fault.to_owned(),
        };
        let start = self.op("nemesis", from_ms, OpKind::Invoke, None, f.clone());
        self.op("nemesis", to_ms, OpKind::Ok, Some(start), f);
    }

    fn history(self) -> History {
        History::from_ops(self.ops)
    }
}

fn handling(
    handler: &str,
    id: Uuid,
    stream: &str,
    version: u64,
    claim: Option<(u32, u64)>,
) -> Handling {
    Handling {
        handler: handler.to_owned(),
        event_id: id,
        stream: stream.to_owned(),
        version,
        position: version,
        segment: claim.map(|(segment, _)| segment),
        epoch: claim.map(|(_, epoch)| epoch),
    }
}

/// The one anomaly of `report`, or a failure that prints them all.
fn only_anomaly(report: &Report) -> &Anomaly {
    assert_eq!(
        report.anomalies.len(),
        1,
        "expected exactly one anomaly:\n{report}"
    );
    &report.anomalies[0]
}

fn exactly_once(handler: &str) -> Expectations {
    Expectations::new().handler(handler, Delivery::ExactlyOnce)
}

#[test]
fn a_clean_history_passes() {
    let mut script = Script::default();
    let (o1, o2, c1, maybe) = (event(1), event(2), event(3), event(4));
    script.append("appender-1", 100, "order-1", &[o1, o2], OpKind::Ok);
    script.append("appender-2", 105, "customer-1", &[c1], OpKind::Ok);
    // Timed out: it may or may not be there, and nobody handled it.
    script.append("appender-2", 110, "order-9", &[maybe], OpKind::Info);
    let publish = Call::Publish {
        event_ids: vec![o1, o2, c1],
    };
    let sent = script.op("relay-1", 120, OpKind::Invoke, None, publish.clone());
    script.op("relay-1", 125, OpKind::Ok, Some(sent), publish);
    script.nemesis(130, 140, "drop both ways");
    script.claim("worker-1", 90, "projection", 0, 1);
    for (at, id, stream, version) in [
        (150, o1, "order-1", 1),
        (160, c1, "customer-1", 1),
        (170, o2, "order-1", 2),
    ] {
        script.commit_at(
            "worker-1",
            at,
            handling("projection", id, stream, version, Some((0, 1))),
        );
    }
    script.op(
        "worker-1",
        180,
        OpKind::Ok,
        None,
        Call::CheckpointSave {
            handler: "projection".to_owned(),
            position: 3,
            segment: Some(0),
            epoch: Some(1),
        },
    );
    script.commit("shipping-1", 200, "shipping", o1, "order-1", 1);
    script.commit("shipping-1", 210, "shipping", o2, "order-1", 2);
    let expectations = exactly_once("projection").handler_seeing(
        "shipping",
        Delivery::AtLeastOnce { window: 2 },
        EventFilter::StreamPrefix("order-".to_owned()),
    );

    let report = check(&script.history(), &expectations);

    report.assert_clean();
    assert_eq!(report.ops, 22, "{report}");
    assert_eq!(report.stalls.len(), 2, "{report}");
    let longest = report.longest_stall.as_ref().expect("a stall");
    assert_eq!(longest.handler, "shipping", "{report}");
    assert_eq!((longest.start_ms, longest.end_ms), (101, 200), "{report}");
}
