//! Through Kafka: the scenarios of `tests/common/processes.rs`, and the faults.
//!
//! The fault bounds leave room for a dead member's session (10 s, under either group
//! protocol: `EVENTSOURCE_KAFKA_GROUP_PROTOCOL` picks it, and CI runs both). The broker
//! killed is the local Apache Kafka node listening on the port of
//! `EVENTSOURCE_KAFKA_BROKERS` (`java ... kafka.Kafka <server.properties>`, as `.ci/run`
//! starts it), started again with the same argv and working directory, its output appended
//! to `kafka.log` there (a guard starts it again if the test fails while it is down).

use eventsource_runtime::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
use eventsource_runtime::kafka::rdkafka::{ClientConfig, TopicPartitionList};
use eventsource_test_support::faults::{self, Bounds};
use eventsource_test_support::processes::{self, BrokerKind, Setup};

use std::time::Duration;

use crate::{alone, shared};

const KAFKA: BrokerKind = BrokerKind::Kafka;

const FAULT_BOUNDS: Bounds = Bounds {
    progress: Duration::from_secs(75),
    recovery: Duration::from_secs(90),
};

#[test]
fn a_producer_and_a_consumer_process_form_one_trace() {
    let _shared = shared();
    processes::a_producer_and_a_consumer_process_form_one_trace(KAFKA);
}

#[test]
fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery() {
    let _shared = shared();
    processes::a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
        KAFKA,
        started_mark_kept,
    );
}

#[test]
fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later() {
    let _shared = shared();
    processes::a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
        KAFKA,
    );
}

/// Whether the group's committed offset carries the mark of the record its consumer started.
fn started_mark_kept(setup: &Setup) -> bool {
    let brokers = setup.broker.trim_start_matches("kafka://");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{}.confirmations", setup.exchange))
        .create()
        .expect("a consumer");
    let topic = format!("{}.Order", setup.exchange);
    let mut list = TopicPartitionList::new();
    list.add_partition(&topic, 0);
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .ok()
        .and_then(|committed| {
            committed
                .find_partition(&topic, 0)
                .map(|entry| entry.metadata() == "eventsource:started")
        })
        .unwrap_or(false)
}

/// Three consumer kills (SIGKILL), each replaced; the idempotent confirmation runs once,
/// the CRM update and the shipping notice at least once (their duplicates reported).
#[test]
fn a_consumer_killed_again_and_again_mid_stream_loses_nothing() {
    let _alone = alone();
    faults::consumers_killed_mid_stream_lose_nothing(KAFKA, 400, 3, FAULT_BOUNDS);
}

#[test]
fn a_relay_killed_mid_publish_loses_nothing() {
    let _alone = alone();
    faults::a_relay_killed_mid_publish_loses_nothing(KAFKA, 300, FAULT_BOUNDS);
}

/// Neither the consumer nor the relay is restarted: both carry on by themselves.
#[test]
fn a_broker_killed_mid_stream_loses_nothing() {
    let _alone = alone();
    let Some(broker) = faults::local_broker("faults-broker", KAFKA) else {
        return;
    };
    let bounds = Bounds {
        progress: Duration::from_secs(60),
        recovery: Duration::from_secs(90),
    };
    faults::a_broker_killed_mid_stream_loses_nothing(
        KAFKA,
        broker,
        400,
        Duration::from_secs(5),
        bounds,
    );
}
