//! Faults with real processes through NATS JetStream (`tests/common/faults/`): the
//! `distributed` example's consumer process killed (SIGKILL) four times in the middle of
//! the stream and replaced each time, its relay process killed twice while it publishes;
//! every stored event is handled, counted by event id, within a bound after the last fault;
//! the idempotent confirmation runs once, the CRM update and the shipping notice at least
//! once (their duplicates reported). The server itself is killed in
//! `tests/processes/faults_nats_broker.rs`.
//!
//! Needs `EVENTSOURCE_NATS_URL` (skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_NATS=1`). The messages a killed consumer had pulled come back after
//! the group's `ack_wait`: the bounds leave room for it.

use eventsource_test_support::faults;
use eventsource_test_support::processes;

use std::time::Duration;

use crate::faults::Bounds;
use crate::processes::BrokerKind;

const BOUNDS: Bounds = Bounds {
    progress: Duration::from_secs(45),
    recovery: Duration::from_secs(60),
};

#[test]
fn a_consumer_killed_again_and_again_mid_stream_loses_nothing() {
    let _one = faults::one_at_a_time();
    faults::consumers_killed_mid_stream_lose_nothing(BrokerKind::Nats, 400, 4, BOUNDS);
}

#[test]
fn a_relay_killed_mid_publish_loses_nothing() {
    let _one = faults::one_at_a_time();
    faults::a_relay_killed_mid_publish_loses_nothing(BrokerKind::Nats, 600, BOUNDS);
}
