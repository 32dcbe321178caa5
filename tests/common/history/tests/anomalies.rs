//! One small history per anomaly: each holds that anomaly and nothing else.

use super::super::{Anomaly, Call, Delivery, DuplicateReason, OpKind, OrderScope, StaleWrite};
use super::{Script, check, event, exactly_once, handling, only_anomaly};

#[test]
fn an_acknowledged_event_never_committed_is_a_lost_write() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2)],
        OpKind::Ok,
    );
    script.commit("worker-1", 20, "projection", event(1), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::LostWrite {
            handler,
            event_id,
            appended_by,
            acknowledged_at_ms,
            ..
        } => {
            assert_eq!((handler.as_str(), *event_id), ("projection", event(2)));
            assert_eq!(
                (appended_by.as_str(), *acknowledged_at_ms),
                ("appender-1", 11)
            );
        }
        other => panic!("not a lost write: {other}"),
    }
}

#[test]
fn a_second_commit_of_an_exactly_once_handler_is_a_duplicate() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
    script.commit("worker-1", 20, "projection", event(1), "order-1", 1);
    script.commit("worker-2", 30, "projection", event(1), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::Duplicate {
            event_id,
            reason,
            commits,
            ..
        } => {
            assert_eq!(*event_id, event(1));
            assert_eq!(*reason, DuplicateReason::ExactlyOnce);
            let processes: Vec<&str> = commits.iter().map(|c| c.process.as_str()).collect();
            assert_eq!(processes, ["worker-1", "worker-2"]);
        }
        other => panic!("not a duplicate: {other}"),
    }
}

#[test]
fn an_at_least_once_repeat_without_a_takeover_is_a_duplicate() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
    script.commit("worker-1", 20, "shipping", event(1), "order-1", 1);
    script.commit("worker-1", 30, "shipping", event(1), "order-1", 1);
    let expectations =
        super::Expectations::new().handler("shipping", Delivery::AtLeastOnce { window: 10 });

    let report = check(&script.history(), &expectations);

    match only_anomaly(&report) {
        Anomaly::Duplicate {
            event_id, reason, ..
        } => assert_eq!(
            (*event_id, reason),
            (event(1), &DuplicateReason::NoTakeover { published: 0 })
        ),
        other => panic!("not a duplicate: {other}"),
    }
}

#[test]
fn an_event_published_twice_may_be_handled_twice_but_not_three_times() {
    let handled = |times: u64| {
        let mut script = Script::default();
        script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Ok);
        let publish = Call::Publish {
            event_ids: vec![event(1)],
        };
        for at in [12, 14] {
            let sent = script.op("relay-1", at, OpKind::Invoke, None, publish.clone());
            script.op("relay-1", at + 1, OpKind::Ok, Some(sent), publish.clone());
        }
        for at in 0..times {
            script.commit("worker-1", 20 + at, "shipping", event(1), "order-1", 1);
        }
        script.history()
    };
    let expectations =
        super::Expectations::new().handler("shipping", Delivery::AtLeastOnce { window: 10 });
    assert!(
        check(&handled(2), &expectations).is_clean(),
        "two messages, two handlings"
    );

    match only_anomaly(&check(&handled(3), &expectations)) {
        Anomaly::Duplicate {
            event_id, reason, ..
        } => assert_eq!(
            (*event_id, reason),
            (event(1), &DuplicateReason::NoTakeover { published: 2 })
        ),
        other => panic!("not a duplicate: {other}"),
    }
}

#[test]
fn an_event_no_append_named_is_unexpected() {
    let mut script = Script::default();
    script.commit("worker-1", 20, "projection", event(7), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::Unexpected {
            event_id,
            committed,
            ..
        } => assert_eq!(
            (*event_id, committed.process.as_str()),
            (event(7), "worker-1")
        ),
        other => panic!("not unexpected: {other}"),
    }
}

#[test]
fn an_event_whose_append_failed_committed_is_an_aborted_read() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Fail);
    script.commit("worker-1", 20, "projection", event(1), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::AbortedRead {
            event_id,
            failed_by,
            failed_at_ms,
            ..
        } => assert_eq!(
            (*event_id, failed_by.as_str(), *failed_at_ms),
            (event(1), "appender-1", 11)
        ),
        other => panic!("not an aborted read: {other}"),
    }
}

#[test]
fn a_failed_attempt_retried_with_success_is_no_aborted_read() {
    let mut script = Script::default();
    script.append("appender-1", 10, "order-1", &[event(1)], OpKind::Fail);
    script.append("appender-1", 15, "order-1", &[event(1)], OpKind::Ok);
    script.commit("worker-1", 20, "projection", event(1), "order-1", 1);

    check(&script.history(), &exactly_once("projection")).assert_clean();
}

#[test]
fn a_commit_after_a_higher_claim_by_another_process_is_a_stale_epoch_write() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2)],
        OpKind::Ok,
    );
    script.claim("worker-1", 15, "projection", 0, 1);
    script.commit_at(
        "worker-1",
        20,
        handling("projection", event(1), "order-1", 1, Some((0, 1))),
    );
    script.claim("worker-2", 30, "projection", 0, 2);
    // Partitioned away, worker-1 goes on at epoch 1.
    script.commit_at(
        "worker-1",
        40,
        handling("projection", event(2), "order-1", 2, Some((0, 1))),
    );

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::StaleEpochWrite {
            write,
            process,
            epoch,
            claimed_by,
            claimed_epoch,
            ..
        } => {
            assert_eq!(*write, StaleWrite::Commit { event_id: event(2) });
            assert_eq!((process.as_str(), *epoch), ("worker-1", 1));
            assert_eq!((claimed_by.as_str(), *claimed_epoch), ("worker-2", 2));
        }
        other => panic!("not a stale epoch write: {other}"),
    }
}

#[test]
fn a_checkpoint_after_a_higher_claim_by_another_process_is_a_stale_epoch_write() {
    let mut script = Script::default();
    script.claim("worker-1", 15, "projection", 3, 1);
    script.claim("worker-2", 30, "projection", 3, 2);
    let save = Call::CheckpointSave {
        handler: "projection".to_owned(),
        position: 42,
        segment: Some(3),
        epoch: Some(1),
    };
    script.op("worker-1", 40, OpKind::Ok, None, save);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::StaleEpochWrite { write, segment, .. } => assert_eq!(
            (write, *segment),
            (&StaleWrite::Checkpoint { position: 42 }, 3)
        ),
        other => panic!("not a stale epoch write: {other}"),
    }
    assert_eq!(only_anomaly(&report).event_id(), None);
}

#[test]
fn versions_going_back_inside_one_run_are_non_monotonic() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2)],
        OpKind::Ok,
    );
    script.commit("worker-1", 20, "projection", event(2), "order-1", 2);
    script.commit("worker-1", 30, "projection", event(1), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::NonMonotonic {
            event_id,
            after_event_id,
            scope,
            ..
        } => assert_eq!(
            (*event_id, *after_event_id, *scope),
            (event(1), event(2), OrderScope::WithinRun)
        ),
        other => panic!("not non-monotonic: {other}"),
    }
}

#[test]
fn first_commits_going_back_across_processes_are_non_monotonic() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2), event(3)],
        OpKind::Ok,
    );
    script.commit("worker-1", 20, "projection", event(1), "order-1", 1);
    script.commit("worker-1", 30, "projection", event(3), "order-1", 3);
    script.commit("worker-2", 40, "projection", event(2), "order-1", 2);

    let report = check(&script.history(), &exactly_once("projection"));

    match only_anomaly(&report) {
        Anomaly::NonMonotonic {
            event_id,
            version,
            after_version,
            scope,
            ..
        } => assert_eq!(
            (*event_id, *version, *after_version, *scope),
            (event(2), 2, 3, OrderScope::FirstCommits)
        ),
        other => panic!("not non-monotonic: {other}"),
    }
}

#[test]
fn an_unordered_handler_is_not_held_to_order() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2)],
        OpKind::Ok,
    );
    script.commit("worker-1", 20, "projection", event(2), "order-1", 2);
    script.commit("worker-1", 30, "projection", event(1), "order-1", 1);
    let unordered =
        super::super::Expectations::new().unordered_handler("projection", Delivery::ExactlyOnce);

    let history = script.history();
    let report = check(&history, &unordered);

    assert!(report.is_clean(), "{report}");
    let ordered = check(&history, &exactly_once("projection"));
    assert_eq!(
        ordered.anomalies_named("NonMonotonic").len(),
        1,
        "{ordered}"
    );
}

#[test]
#[should_panic(
    expected = "LostWrite [handler projection]: event 00000000-0000-0000-0000-000000000002"
)]
fn assert_clean_lists_every_anomaly() {
    let mut script = Script::default();
    script.append(
        "appender-1",
        10,
        "order-1",
        &[event(1), event(2)],
        OpKind::Ok,
    );
    script.commit("worker-1", 20, "projection", event(3), "order-1", 1);

    let report = check(&script.history(), &exactly_once("projection"));

    assert_eq!(report.anomalies.len(), 3, "{report}");
    assert_eq!(report.anomalies_named("Unexpected").len(), 1, "{report}");
    report.assert_clean();
}
