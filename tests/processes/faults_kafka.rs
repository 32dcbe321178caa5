//! Faults with real processes through Kafka (`tests/common/faults/`): the `distributed`
//! example's consumer process killed (SIGKILL) three times in the middle of the stream and
//! replaced each time, its relay process killed twice while it publishes; every stored
//! event is handled, counted by event id, within a bound after the last fault; the
//! idempotent confirmation runs once, the CRM update and the shipping notice at least once
//! (their duplicates reported). The broker itself is killed in `tests/processes/faults_kafka_broker.rs`.
//!
//! Needs `EVENTSOURCE_KAFKA_BROKERS` (skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1`). The bounds leave room for a dead member's session
//! (10 s, under either group protocol: `EVENTSOURCE_KAFKA_GROUP_PROTOCOL` picks it, and CI
//! runs both).

use eventsource_test_support::faults;
use eventsource_test_support::processes;

use std::time::Duration;

use crate::faults::Bounds;
use crate::processes::BrokerKind;

const BOUNDS: Bounds = Bounds {
    progress: Duration::from_secs(75),
    recovery: Duration::from_secs(90),
};

#[test]
fn a_consumer_killed_again_and_again_mid_stream_loses_nothing() {
    let _one = faults::one_at_a_time();
    faults::consumers_killed_mid_stream_lose_nothing(BrokerKind::Kafka, 400, 3, BOUNDS);
}

#[test]
fn a_relay_killed_mid_publish_loses_nothing() {
    let _one = faults::one_at_a_time();
    faults::a_relay_killed_mid_publish_loses_nothing(BrokerKind::Kafka, 300, BOUNDS);
}
