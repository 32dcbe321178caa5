//! An application's appending transaction under faults: appender `a`, in the namespace,
//! appends in transactions of its own (`append_in_transaction`, some work before each
//! commit), its store's `idle_transaction_timeout` `T`; the test appends too, and runner `b`,
//! on the host, handles everything. A transaction of `a` cut off (or paused) holds the
//! store's high-water mark, and with it every reader, until the server ends it. Judged: the
//! checker finds no anomaly (an append whose commit was never answered may have landed or
//! not: either is right, and an aborted one is never handled); no reader is held longer
//! than `T` + the server's check (1 s) + 5 s; each of `a`'s calls returns within its
//! `answer_timeout` (`T`) + 1 s, whatever the network does (a paused process's calls
//! excepted: it does nothing while paused); both stop within 30 s of SIGTERM.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use eventsource_test_support::history::{
    Delivery, Expectations, History, OpKind, check, wall_clock_ms,
};

use super::TIMEOUT;
use super::child::{BATCH, CHECKPOINT_EVERY, PROJECTION};
use super::world::{Nemesis, World, stalled, took, waiting_since};

/// The longest the readers may be held: the server ends the idle transaction after `T`
/// (its timer's granularity, a second at most); the runner's next poll; then 5 s.
fn release_bound() -> Duration {
    TIMEOUT + Duration::from_secs(1) + Duration::from_secs(5)
}

/// Does `nemesis` to the appender for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let dir = world.history_dir().to_owned();
    let mut b = world.start_child("runner", "b", false, nemesis);
    let a = world.start_child("appender", "a", true, nemesis);
    let a_appended = async || {
        eventsource_test_support::history::History::read_dir(&dir).is_ok_and(|history| {
            history.ops.iter().any(|op| {
                op.process == "a" && op.kind == eventsource_test_support::history::OpKind::Ok
            })
        }) && world.db.handled_by("b").await > 20
    };
    b.wait_for(
        "a appends and b handles",
        Duration::from_secs(30),
        a_appended,
    )
    .await;

    let struck_ms = wall_clock_ms();
    let released = async || waiting_since(&dir, struck_ms).is_empty();
    let release = world
        .cut_off(nemesis, hold, &a, &mut b, release_bound(), released)
        .await;

    let acknowledged = world.finish_appending_by_history(&mut b).await;
    let (a_stop, b_stop) = (a.stop(), b.stop());
    let expectations = Expectations::new().handler(
        PROJECTION,
        Delivery::AtLeastOnce {
            window: (CHECKPOINT_EVERY + 2 * BATCH) as u64,
        },
    );
    let report = check(&world.history("a", nemesis, Vec::new()), &expectations);
    report.assert_clean();
    report.assert_longest_stall_at_most(release_bound());
    let longest_call = longest_call(&dir, "a");
    if !matches!(nemesis, Nemesis::Pause) {
        assert!(
            longest_call <= TIMEOUT + Duration::from_secs(1),
            "a call of the appender's took {longest_call:?}"
        );
    }
    println!(
        "appender, {} held {hold:?} (idle_transaction_timeout and answer_timeout \
         {TIMEOUT:?}): {acknowledged} of the test's appends acknowledged; every event \
         acknowledged before it handled {} after it began; a's longest call {longest_call:?}; \
         stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} (b); longest stall: {}",
        nemesis.name(),
        took(release),
        stalled(&report),
    );
    world.end().await;
}

/// The longest any call of `process` took, from its invocation to its outcome (a call
/// still open when it stopped is left out).
fn longest_call(dir: &Path, process: &str) -> Duration {
    let history = History::read_dir(dir).unwrap();
    let invoked: HashMap<u64, u64> = (history.ops.iter())
        .filter(|op| op.process == process && op.kind == OpKind::Invoke)
        .map(|op| (op.seq, op.at_ms))
        .collect();
    let longest = (history.ops.iter())
        .filter(|op| op.process == process && op.kind != OpKind::Invoke)
        .filter_map(|op| Some(op.at_ms - invoked.get(&op.completes?)?))
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest)
}
