//! At least once after a takeover, and appends whose outcome is unknown.

use super::super::{Anomaly, Delivery, DuplicateReason, Expectations, OpKind};
use super::{Script, check, event, exactly_once, handling, only_anomaly};

/// worker-1 commits events 1..=5 at epoch 1 and dies; worker-2 claims epoch 2 and handles
/// `replayed` of them again before event 6.
fn takeover_replaying(replayed: &[u128]) -> Script {
    let mut script = Script::default();
    let ids: Vec<_> = (1..=6).map(event).collect();
    script.append("appender-1", 10, "order-1", &ids, OpKind::Ok);
    script.claim("worker-1", 12, "shipping", 0, 1);
    for n in 1..=5u64 {
        let h = handling("shipping", event(n.into()), "order-1", n, Some((0, 1)));
        script.commit_at("worker-1", 20 + n, h);
    }
    script.claim("worker-2", 100, "shipping", 0, 2);
    let mut at = 110;
    for &n in replayed.iter().chain(&[6]) {
        let h = handling("shipping", event(n), "order-1", n as u64, Some((0, 2)));
        script.commit_at("worker-2", at, h);
        at += 10;
    }
    script
}

fn at_least_once(window: u64) -> Expectations {
    Expectations::new().handler("shipping", Delivery::AtLeastOnce { window })
}

#[test]
fn an_at_least_once_replay_after_a_takeover_within_the_window_passes() {
    let report = check(&takeover_replaying(&[4, 5]).history(), &at_least_once(2));

    report.assert_clean();
}

#[test]
fn an_at_least_once_replay_beyond_the_window_is_a_duplicate() {
    let report = check(&takeover_replaying(&[3, 4, 5]).history(), &at_least_once(2));

    match only_anomaly(&report) {
        Anomaly::Duplicate {
            event_id,
            reason,
            delivery,
            commits,
            ..
        } => {
            assert_eq!(*event_id, event(5), "the replay past the window");
            assert_eq!(*delivery, Delivery::AtLeastOnce { window: 2 });
            assert_eq!(
                *reason,
                DuplicateReason::BeyondWindow {
                    takeover_process: "worker-2".to_owned(),
                    rehandled: 3,
                    window: 2,
                }
            );
            assert_eq!(commits.len(), 2);
        }
        other => panic!("not a duplicate: {other}"),
    }
}

#[test]
fn the_same_replay_for_an_exactly_once_handler_is_a_duplicate_per_event() {
    let report = check(
        &takeover_replaying(&[5]).history(),
        &exactly_once("shipping"),
    );

    match only_anomaly(&report) {
        Anomaly::Duplicate {
            event_id, reason, ..
        } => assert_eq!(
            (*event_id, reason),
            (event(5), &DuplicateReason::ExactlyOnce)
        ),
        other => panic!("not a duplicate: {other}"),
    }
}

#[test]
fn an_append_of_unknown_outcome_never_handled_passes() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
    script.append("appender-1", 20, "order-1", &[event(2)], OpKind::Info);
    // Killed before its outcome: unknown too.
    script.append("appender-2", 25, "order-2", &[event(3)], OpKind::Invoke);
    script.commit("worker-1", 30, "projection", event(1), "order-1", 1);

    check(&script.history(), &exactly_once("projection")).assert_clean();
}

#[test]
fn an_append_of_unknown_outcome_handled_passes() {
    let mut script = Script::default();
    script.append("appender-1", 20, "order-1", &[event(2)], OpKind::Info);
    script.commit("worker-1", 30, "projection", event(2), "order-1", 1);

    check(&script.history(), &exactly_once("projection")).assert_clean();
}

#[test]
fn a_commit_of_unknown_outcome_counts_as_seen_but_not_as_a_repeat() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
    let h = handling("projection", event(1), "order-1", 1, None);
    let start = script.op(
        "worker-1",
        20,
        OpKind::Invoke,
        None,
        super::Call::HandleStart(h.clone()),
    );
    script.op(
        "worker-1",
        25,
        OpKind::Info,
        Some(start),
        super::Call::HandleCommit(h),
    );
    script.commit("worker-2", 40, "projection", event(1), "order-1", 1);

    check(&script.history(), &exactly_once("projection")).assert_clean();
}

#[test]
fn a_handler_sees_only_what_its_filter_admits() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
    script.append("appender-1", 12, "customer-1", &[event(2)], OpKind::Ok);
    script.commit("shipping-1", 30, "shipping", event(1), "order-1", 1);
    let expectations = Expectations::new().handler_seeing(
        "shipping",
        Delivery::ExactlyOnce,
        super::EventFilter::Streams(vec!["order-1".to_owned()]),
    );

    check(&script.history(), &expectations).assert_clean();
}
