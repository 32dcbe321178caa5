//! Across processes through NATS JetStream: the scenarios of `tests/common/processes.rs`.
//!
//! Needs `EVENTSOURCE_NATS_URL` (skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_NATS=1`).

use eventsource_test_support::processes;

use crate::processes::BrokerKind;

#[test]
fn a_producer_and_a_consumer_process_form_one_trace() {
    processes::a_producer_and_a_consumer_process_form_one_trace(BrokerKind::Nats);
}

#[test]
fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery() {
    // JetStream counts the deliveries of a message it hands over again.
    processes::a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
        BrokerKind::Nats,
        |_| true,
    );
}

#[test]
fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later() {
    processes::a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
        BrokerKind::Nats,
    );
}
