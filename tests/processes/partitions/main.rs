//! The partition suite: the library's processes cut off the way production loses hosts and
//! networks, silently, and judged from their histories (`eventsource_test_support::history`).
//!
//! Runner `a`, in a network namespace of its own (`eventsource_test_support::netns`), holds a
//! projection's lease on PostgreSQL; runner `b` waits for it on the host; the test appends
//! all along. Then `a`'s packets are dropped (both ways, or one way) or rejected for half,
//! once or three times the lease timeout `T`, or `a` is paused (SIGSTOP), or its clock is
//! off by twice `T` (libfaketime) while it is cut off; then healed. Judged:
//!
//! - every acknowledged append handled, no duplicate beyond the at-least-once window of a
//!   takeover, nothing handled that was not appended, no stream out of order (the checker);
//! - a fault held at least `T`: `b` handles within the lease bound (`5T/4`, the server
//!   ending `a`'s silent session) + 5 s of the fault's start;
//! - `a` handles nothing once `b` has begun (by the server's clock, from `handled`);
//! - both stop within 30 s of SIGTERM.
//!
//! Needs root, `ip` and `nft`, and a PostgreSQL that takes connections from 10.99.0.0/16
//! (`EVENTSOURCE_PARTITION_PG_URL`; `.ci/run --partitions-only` starts one): without them
//! it prints `skipped: ...` and passes, unless `EVENTSOURCE_REQUIRE_PARTITIONS=1`.

mod runner;
mod world;

use std::time::Duration;

use eventsource_test_support::netns::Fault;

use world::{Nemesis, Scenario};

/// The lease timeout the runners use: short, so that the suite is.
const LEASE_TIMEOUT: Duration = Duration::from_secs(4);

/// The child's side (`runner`): does nothing when run as an ordinary test.
#[tokio::test]
async fn child() {
    if std::env::var(runner::CHILD).is_ok() {
        runner::run().await;
    }
}

#[tokio::test]
async fn lease_holder_black_holed_half_the_lease_timeout() {
    Scenario::run(1, Nemesis::Net(Fault::DropBoth), LEASE_TIMEOUT / 2).await;
}

#[tokio::test]
async fn lease_holder_black_holed_for_the_lease_timeout() {
    Scenario::run(2, Nemesis::Net(Fault::DropBoth), LEASE_TIMEOUT).await;
}

#[tokio::test]
async fn lease_holder_black_holed_three_lease_timeouts() {
    Scenario::run(3, Nemesis::Net(Fault::DropBoth), LEASE_TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_deaf_three_lease_timeouts() {
    Scenario::run(4, Nemesis::Net(Fault::DropToProcess), LEASE_TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_mute_three_lease_timeouts() {
    Scenario::run(5, Nemesis::Net(Fault::DropFromProcess), LEASE_TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_rejected_for_the_lease_timeout() {
    Scenario::run(6, Nemesis::Net(Fault::RejectBoth), LEASE_TIMEOUT).await;
}

#[tokio::test]
async fn lease_holder_paused_three_lease_timeouts() {
    Scenario::run(7, Nemesis::Pause, LEASE_TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_clock_ahead_black_holed_three_lease_timeouts() {
    Scenario::run(
        8,
        Nemesis::Skewed(Fault::DropBoth, "+8s"),
        LEASE_TIMEOUT * 3,
    )
    .await;
}

#[tokio::test]
async fn lease_holder_clock_behind_black_holed_three_lease_timeouts() {
    Scenario::run(
        9,
        Nemesis::Skewed(Fault::DropBoth, "-8s"),
        LEASE_TIMEOUT * 3,
    )
    .await;
}
