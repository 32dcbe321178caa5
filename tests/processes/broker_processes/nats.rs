//! Through NATS JetStream: the scenarios of `tests/common/processes.rs`, and the faults.
//!
//! The messages a killed consumer had pulled come back after the group's `ack_wait`: the
//! bounds leave room for it. A server killed and started again forgets the acknowledgements
//! of the seconds before the kill (`tests/processes/nats_restart.rs`): those messages come
//! again, reported as duplicates. The server killed is the local `nats-server` process
//! listening on the port of `EVENTSOURCE_NATS_URL`, started again with the same argv and
//! working directory, in a process group of its own, its output appended to
//! `eventsource-nats-restart.log` in the temporary directory (a guard starts it again if
//! the test fails while it is down).

use eventsource_test_support::faults::{self, Bounds};
use eventsource_test_support::processes::{self, BrokerKind};

use std::time::Duration;

use crate::{alone, shared};

const NATS: BrokerKind = BrokerKind::Nats;

const FAULT_BOUNDS: Bounds = Bounds {
    progress: Duration::from_secs(45),
    recovery: Duration::from_secs(60),
};

#[test]
fn a_producer_and_a_consumer_process_form_one_trace() {
    let _shared = shared();
    processes::a_producer_and_a_consumer_process_form_one_trace(NATS);
}

#[test]
fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery() {
    let _shared = shared();
    // JetStream counts the deliveries of a message it hands over again.
    processes::a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
        NATS,
        |_| true,
    );
}

#[test]
fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later() {
    let _shared = shared();
    processes::a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
        NATS,
    );
}

/// Four consumer kills (SIGKILL), each replaced; the idempotent confirmation runs once,
/// the CRM update and the shipping notice at least once (their duplicates reported).
#[test]
fn a_consumer_killed_again_and_again_mid_stream_loses_nothing() {
    let _alone = alone();
    faults::consumers_killed_mid_stream_lose_nothing(NATS, 400, 4, FAULT_BOUNDS);
}

#[test]
fn a_relay_killed_mid_publish_loses_nothing() {
    let _alone = alone();
    faults::a_relay_killed_mid_publish_loses_nothing(NATS, 600, FAULT_BOUNDS);
}

/// Neither the consumer nor the relay is restarted: both carry on by themselves.
#[test]
fn a_server_killed_mid_stream_loses_nothing() {
    let _alone = alone();
    let Some(server) = faults::local_broker("faults-broker", NATS) else {
        return;
    };
    let bounds = Bounds {
        progress: Duration::from_secs(45),
        recovery: Duration::from_secs(60),
    };
    faults::a_broker_killed_mid_stream_loses_nothing(
        NATS,
        server,
        400,
        Duration::from_secs(3),
        bounds,
    );
}
