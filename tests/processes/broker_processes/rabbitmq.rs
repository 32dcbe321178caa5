//! Through RabbitMQ: the scenarios of `tests/common/processes.rs`.

use eventsource_test_support::processes::{self, BrokerKind};

use crate::shared;

#[test]
fn a_producer_and_a_consumer_process_form_one_trace() {
    let _shared = shared();
    processes::a_producer_and_a_consumer_process_form_one_trace(BrokerKind::RabbitMq);
}

#[test]
fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery() {
    let _shared = shared();
    // RabbitMQ flags a message it hands over again.
    processes::a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
        BrokerKind::RabbitMq,
        |_| true,
    );
}

#[test]
fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later() {
    let _shared = shared();
    processes::a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
        BrokerKind::RabbitMq,
    );
}
