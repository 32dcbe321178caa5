//! The longest stall and the fault behind it.

use super::super::OpKind;
use super::{Script, check, event, exactly_once};

#[test]
fn the_longest_stall_is_found_with_the_fault_active_during_it() {
    let mut script = Script::default();
    script.append("appender-1", 1000, "order-1", &[event(1)], OpKind::Ok);
    script.commit("worker-1", 1010, "projection", event(1), "order-1", 1);
    script.nemesis(1500, 6000, "drop both ways");
    script.append("appender-1", 2000, "order-1", &[event(2)], OpKind::Ok);
    script.append("appender-1", 3000, "order-1", &[event(3)], OpKind::Ok);
    script.commit("worker-1", 7000, "projection", event(2), "order-1", 2);
    script.commit("worker-1", 7010, "projection", event(3), "order-1", 3);
    script.nemesis(7300, 7400, "SIGSTOP worker-2");

    let report = check(&script.history(), &exactly_once("projection"));

    report.assert_clean();
    let stall = report.longest_stall.as_ref().expect("a stall");
    assert_eq!(stall.handler, "projection");
    assert_eq!(
        (stall.start_ms, stall.end_ms, stall.duration_ms),
        (2001, 7000, 4999),
        "{report}"
    );
    assert_eq!(
        (stall.oldest_waiting, stall.waiting_events),
        (event(2), 2),
        "{report}"
    );
    assert!(!stall.until_end_of_history);
    assert_eq!(stall.cause(), "drop both ways", "{report}");
    assert!(
        report.to_string().contains("cause: drop both ways"),
        "{report}"
    );
}

#[test]
fn a_stall_no_commit_ended_lasts_to_the_end_of_history_with_every_fault_during_it() {
    let mut script = Script::default();
    script.append("appender-1", 1000, "order-1", &[event(1)], OpKind::Ok);
    script.commit("worker-1", 1010, "projection", event(1), "order-1", 1);
    script.append("appender-1", 2000, "order-1", &[event(2)], OpKind::Ok);
    script.nemesis(2500, 2600, "drop worker-1 both ways");
    script.commit("worker-2", 4000, "other", event(1), "order-1", 1);
    script.nemesis(5000, 5500, "SIGSTOP worker-1");
    script.commit("worker-2", 5600, "other", event(2), "order-1", 2);
    script.op(
        "nemesis",
        9000,
        OpKind::Info,
        None,
        super::Call::Nemesis {
            fault: "SIGKILL worker-1".to_owned(),
        },
    );

    let report = check(&script.history(), &exactly_once("projection"));

    assert_eq!(report.anomalies_named("LostWrite").len(), 1, "{report}");
    let stall = report.longest_stall.as_ref().expect("a stall");
    assert_eq!((stall.start_ms, stall.end_ms), (2001, 9000), "{report}");
    assert!(stall.until_end_of_history, "{report}");
    assert_eq!(
        stall.nemeses,
        [
            "drop worker-1 both ways",
            "SIGSTOP worker-1",
            "SIGKILL worker-1"
        ],
        "{report}"
    );
}

#[test]
fn a_stall_with_no_fault_says_none_recorded() {
    let mut quiet = Script::default();
    quiet.append("appender-1", 1000, "order-1", &[event(1)], OpKind::Ok);
    quiet.commit("worker-1", 3000, "projection", event(1), "order-1", 1);
    let report = check(&quiet.history(), &exactly_once("projection"));
    let stall = report.longest_stall.as_ref().expect("a stall");
    assert_eq!(
        (stall.duration_ms, stall.cause().as_str()),
        (1999, "none recorded"),
        "{report}"
    );
}
