//! A projection's lease under faults: runner `a`, in the namespace, holds it; runner `b`
//! waits on the host. Judged: the checker finds no anomaly (at-least-once, within a
//! takeover's window); a fault held at least `T` has `b` handling within the lease bound
//! (`5T/4`) + 5 s of its start; `a` handles nothing once `b` has begun, by the server's
//! clock, but the one call it had in flight when it was cut off (handler calls are not
//! fenced: its statement can wait in `a`'s socket until the heal); both stop within 30 s of
//! SIGTERM.

use std::time::Duration;

use eventsource_test_support::history::{Call, Delivery, Expectations, History, check};

use super::TIMEOUT;
use super::child::{BATCH, CHECKPOINT_EVERY, PROJECTION};
use super::world::{Nemesis, World, stalled, took};

/// The longest a standby may take to handle after the holder is cut off: the server ends
/// the holder's silent session within `5T/4`; the standby's next try (250 ms) and its
/// takeover grace (250 ms) follow; then the 5 s.
fn takeover_bound() -> Duration {
    TIMEOUT * 5 / 4 + Duration::from_millis(500) + Duration::from_secs(5)
}

/// Does `nemesis` to the lease holder for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let db = &world.db;
    let mut a = world.start_child("runner", "a", true, nemesis);
    let a_handles = async || db.handled_by("a").await >= 20;
    a.wait_for("a handles events", Duration::from_secs(30), a_handles)
        .await;
    let mut b = world.start_child("runner", "b", false, nemesis);
    let b_connected = async || db.connected("b").await;
    b.wait_for("b connects", Duration::from_secs(10), b_connected)
        .await;

    let b_handles = async || db.handled_by("b").await > 0;
    let takeover = world
        .cut_off(nemesis, hold, &a, &mut b, takeover_bound(), b_handles)
        .await;

    let acknowledged = world.finish_appending(&mut b).await;
    let (a_stop, b_stop) = (a.stop(), b.stop());
    let expectations = Expectations::new().handler(
        PROJECTION,
        Delivery::AtLeastOnce {
            window: (CHECKPOINT_EVERY + 2 * BATCH) as u64,
        },
    );
    let report = check(&world.history("a", nemesis, Vec::new()), &expectations);
    report.assert_clean();
    // By the server's clock. Handler calls are not fenced (the runner's docs): the call `a`
    // had in flight when it was cut off can land after `b` began, its statement held in
    // `a`'s socket until the heal; `a` starts nothing once it gave the lease up.
    let late = world
        .db
        .event_ids(
            "SELECT event_id FROM \"__schema__\".handled WHERE runner = 'a' AND at > \
             (SELECT min(at) FROM \"__schema__\".handled WHERE runner = 'b')",
        )
        .await;
    let in_flight = last_started(&world.history("a", nemesis, Vec::new()), "a");
    let started_later: Vec<_> = late.iter().filter(|id| Some(**id) != in_flight).collect();
    assert!(
        started_later.is_empty(),
        "a handled {} events after b had begun, besides the call it had in flight when cut \
         off: two holders at once ({started_later:?})",
        started_later.len()
    );
    println!(
        "lease, {} held {hold:?} (T = {TIMEOUT:?}): {acknowledged} appends acknowledged; b \
         handled {} after it began; stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} \
         (b); longest stall: {}; a's call in flight landed after b began: {}",
        nemesis.name(),
        took(takeover),
        stalled(&report),
        !late.is_empty(),
    );
    world.end().await;
}

/// The event of the last handler call `process` started.
fn last_started(history: &History, process: &str) -> Option<uuid::Uuid> {
    (history.ops.iter())
        .filter(|op| op.process == process)
        .filter_map(|op| match &op.f {
            Call::HandleStart(handling) => Some((op.seq, handling.event_id)),
            _ => None,
        })
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, event_id)| event_id)
}
