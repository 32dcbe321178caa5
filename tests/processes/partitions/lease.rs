//! A projection's lease under faults: runner `a`, in the namespace, holds it; runner `b`
//! waits on the host. Judged: the checker finds no anomaly (at-least-once, within a
//! takeover's window); a fault held at least `T` has `b` handling within the lease bound
//! (`5T/4`) + 5 s of its start; `a` handles nothing once `b` has begun, by the server's
//! clock; both stop within 30 s of SIGTERM.

use std::time::Duration;

use eventsource_test_support::history::{Delivery, Expectations, check};

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
    let overlapping = world
        .db
        .scalar(
            "SELECT count(*) FROM \"__schema__\".handled WHERE runner = 'a' AND at > \
             (SELECT min(at) FROM \"__schema__\".handled WHERE runner = 'b')",
        )
        .await;
    assert_eq!(
        overlapping, 0,
        "a handled {overlapping} events after b had begun: two holders at once"
    );
    println!(
        "lease, {} held {hold:?} (T = {TIMEOUT:?}): {acknowledged} appends acknowledged; b \
         handled {} after it began; stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} \
         (b); longest stall: {}",
        nemesis.name(),
        took(takeover),
        stalled(&report),
    );
    world.end().await;
}
