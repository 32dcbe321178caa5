//! Across processes through Kafka: the scenarios of `tests/common/processes.rs`.
//!
//! Needs `EVENTSOURCE_KAFKA_BROKERS` (skipped visibly without it, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1`).

use eventsource_test_support::processes;

use std::time::Duration;

use crate::processes::{BrokerKind, Setup};
use eventsource_runtime::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};

#[test]
fn a_producer_and_a_consumer_process_form_one_trace() {
    processes::a_producer_and_a_consumer_process_form_one_trace(BrokerKind::Kafka);
}

#[test]
fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery() {
    processes::a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
        BrokerKind::Kafka,
        started_mark_kept,
    );
}

#[test]
fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later() {
    processes::a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
        BrokerKind::Kafka,
    );
}

/// Whether the group's committed offset carries the mark of the record its consumer started.
fn started_mark_kept(setup: &Setup) -> bool {
    let brokers = setup.broker.trim_start_matches("kafka://");
    let consumer: BaseConsumer = eventsource_runtime::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{}.confirmations", setup.exchange))
        .create()
        .expect("a consumer");
    let topic = format!("{}.Order", setup.exchange);
    let mut list = eventsource_runtime::kafka::rdkafka::TopicPartitionList::new();
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
