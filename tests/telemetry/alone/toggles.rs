//! The process-wide switches: in code (`telemetry::set_enabled`) and in the environment
//! (`EVENTSOURCE_TRACING=off`, checked in a child process since it is read once).
//! Every test here flips global state, so they take a lock.

use eventsource_test_support::domain;

use std::process::Command;

use domain::{Order, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::{self, toggles};
use eventsource_runtime::testing::capture;

static GLOBAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_process_switch_in_code() {
    let _lock = GLOBAL.lock().await;
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());

    telemetry::set_enabled(false);
    assert!(!telemetry::is_enabled());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert!(capture.spans().is_empty(), "{}", capture.spans().tree());

    telemetry::set_enabled(true);
    orders.execute(sample_order("o-2", "ada")).await.unwrap();
    assert!(!capture.spans().all("command.PlaceOrder").is_empty());
    toggles::reset();
}

#[tokio::test]
async fn the_projection_override() {
    let _lock = GLOBAL.lock().await;
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders.register(domain::OrderReadModel::default()); // its own switch: off

    toggles::set_projection_tracing(Some(true));
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert_eq!(capture.spans().all("projection.OrderReadModel").len(), 1);

    capture.clear();
    toggles::set_projection_tracing(None);
    orders.execute(sample_order("o-2", "ada")).await.unwrap();
    assert!(capture.spans().all("projection.OrderReadModel").is_empty());
    toggles::reset();
}

#[test]
fn the_environment_switch() {
    let _lock = GLOBAL.blocking_lock();
    for (value, expect_spans) in [("off", false), ("OFF", false), ("0", false), ("on", true)] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reports_spans",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(toggles::ENV_SWITCH, value)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "child failed: {stdout}");
        let expected = format!("CHILD spans={expect_spans}");
        assert!(
            stdout.contains(&expected),
            "{value}: expected `{expected}` in\n{stdout}"
        );
    }
}

/// Run by `the_environment_switch` in a child process with the variable set.
#[tokio::test]
#[ignore = "run in a child process by the_environment_switch"]
async fn child_reports_spans() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    println!("CHILD spans={}", !capture.spans().is_empty());
}
