//! The partition suite: the library's processes cut off the way production loses hosts and
//! networks, silently, and judged from what they recorded (`eventsource_test_support::
//! history`): every acknowledged append handled, within the delivery guarantee, in order,
//! nothing handled that was not appended, nothing written under an old claim.
//!
//! The process under test (`a`) runs in a network namespace of its own
//! (`eventsource_test_support::netns`); its peer (`b`) on the host; the test appends all
//! along. Then `a`'s packets are dropped (both ways, or one way) or rejected for half, once
//! or three times the timeout `T` it races, or `a` is paused (SIGSTOP), or its clock is off
//! by twice `T` (libfaketime) while it is cut off; then healed.
//!
//! - `lease`: `a` and `b` are projection runners, `a` holding the projection's lease;
//! - `segments`: `a` and `b` are workers of a projection split into segments, writing in the
//!   checkpoint's transaction on condition of their claims;
//! - `groups` (feature `nats`): `a` and `b` are members of a NATS JetStream consumer group,
//!   or (features `rabbitmq`, `kafka`) of a RabbitMQ or Kafka one (reached through a
//!   `forwarder`);
//! - `relay` (feature `nats`): `a` and `b` are relays to NATS, `a` holding the relay's lease,
//!   cut off from everything or from its broker only;
//! - `appender`: `a` appends in transactions of its own, `b` is a projection runner held
//!   back by them.
//!
//! Needs root, `ip` and `nft`, and a PostgreSQL that takes connections from 10.99.0.0/16
//! (`EVENTSOURCE_PARTITION_PG_URL`; `.ci/run --partitions-only` starts one): without them
//! it prints `skipped: ...` and passes, unless `EVENTSOURCE_REQUIRE_PARTITIONS=1`.

mod appender;
mod child;
#[cfg(feature = "nats")]
mod forwarder;
#[cfg(feature = "nats")]
mod groups;
mod lease;
#[cfg(feature = "nats")]
mod relay;
mod segments;
mod world;

use std::time::Duration;

use eventsource_test_support::netns::Fault;

#[cfg(feature = "nats")]
use groups::Broker;
use world::Nemesis;

/// The lease and claim timeout the children use: short, so that the suite is.
const TIMEOUT: Duration = Duration::from_secs(4);

/// The child's side: does nothing when run as an ordinary test.
#[tokio::test]
async fn child() {
    child::run().await;
}

#[tokio::test]
async fn lease_holder_black_holed_half_the_timeout() {
    lease::run(1, Nemesis::Net(Fault::DropBoth), TIMEOUT / 2).await;
}

#[tokio::test]
async fn lease_holder_black_holed_for_the_timeout() {
    lease::run(2, Nemesis::Net(Fault::DropBoth), TIMEOUT).await;
}

#[tokio::test]
async fn lease_holder_black_holed_three_timeouts() {
    lease::run(3, Nemesis::Net(Fault::DropBoth), TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_deaf_three_timeouts() {
    lease::run(4, Nemesis::Net(Fault::DropToProcess), TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_mute_three_timeouts() {
    lease::run(5, Nemesis::Net(Fault::DropFromProcess), TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_rejected_for_the_timeout() {
    lease::run(6, Nemesis::Net(Fault::RejectBoth), TIMEOUT).await;
}

#[tokio::test]
async fn lease_holder_paused_three_timeouts() {
    lease::run(7, Nemesis::Pause, TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_clock_ahead_black_holed_three_timeouts() {
    lease::run(8, Nemesis::Skewed(Fault::DropBoth, "+8s"), TIMEOUT * 3).await;
}

#[tokio::test]
async fn lease_holder_clock_behind_black_holed_three_timeouts() {
    lease::run(9, Nemesis::Skewed(Fault::DropBoth, "-8s"), TIMEOUT * 3).await;
}

#[tokio::test]
async fn segment_worker_black_holed_half_the_timeout() {
    segments::run(11, Nemesis::Net(Fault::DropBoth), TIMEOUT / 2).await;
}

#[tokio::test]
async fn segment_worker_black_holed_three_timeouts() {
    segments::run(12, Nemesis::Net(Fault::DropBoth), TIMEOUT * 3).await;
}

#[tokio::test]
async fn segment_worker_mute_three_timeouts() {
    segments::run(13, Nemesis::Net(Fault::DropFromProcess), TIMEOUT * 3).await;
}

#[tokio::test]
async fn segment_worker_rejected_for_the_timeout() {
    segments::run(14, Nemesis::Net(Fault::RejectBoth), TIMEOUT).await;
}

#[tokio::test]
async fn segment_worker_paused_three_timeouts() {
    segments::run(15, Nemesis::Pause, TIMEOUT * 3).await;
}

#[tokio::test]
async fn segment_worker_clock_ahead_black_holed_three_timeouts() {
    segments::run(16, Nemesis::Skewed(Fault::DropBoth, "+8s"), TIMEOUT * 3).await;
}

#[tokio::test]
async fn segment_worker_clock_behind_black_holed_three_timeouts() {
    segments::run(17, Nemesis::Skewed(Fault::DropBoth, "-8s"), TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_black_holed_half_the_timeout() {
    groups::run(18, Broker::Nats, Nemesis::Net(Fault::DropBoth), TIMEOUT / 2).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_deaf_three_timeouts() {
    groups::run(
        19,
        Broker::Nats,
        Nemesis::Net(Fault::DropToProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_mute_three_timeouts() {
    groups::run(
        20,
        Broker::Nats,
        Nemesis::Net(Fault::DropFromProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_black_holed_three_timeouts() {
    groups::run(21, Broker::Nats, Nemesis::Net(Fault::DropBoth), TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_paused_three_timeouts() {
    groups::run(22, Broker::Nats, Nemesis::Pause, TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_member_rejected_for_the_timeout() {
    groups::run(23, Broker::Nats, Nemesis::Net(Fault::RejectBoth), TIMEOUT).await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_black_holed_three_timeouts() {
    groups::run(
        24,
        Broker::RabbitMq,
        Nemesis::Net(Fault::DropBoth),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_paused_three_timeouts() {
    groups::run(25, Broker::RabbitMq, Nemesis::Pause, TIMEOUT * 3).await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_rejected_for_the_timeout() {
    groups::run(
        26,
        Broker::RabbitMq,
        Nemesis::Net(Fault::RejectBoth),
        TIMEOUT,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_black_holed_half_the_timeout() {
    groups::run(
        37,
        Broker::RabbitMq,
        Nemesis::Net(Fault::DropBoth),
        TIMEOUT / 2,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_deaf_three_timeouts() {
    groups::run(
        38,
        Broker::RabbitMq,
        Nemesis::Net(Fault::DropToProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "rabbitmq"))]
#[tokio::test]
async fn rabbitmq_member_mute_three_timeouts() {
    groups::run(
        39,
        Broker::RabbitMq,
        Nemesis::Net(Fault::DropFromProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_black_holed_half_the_timeout() {
    groups::run(
        33,
        Broker::Kafka,
        Nemesis::Net(Fault::DropBoth),
        TIMEOUT / 2,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_deaf_three_timeouts() {
    groups::run(
        34,
        Broker::Kafka,
        Nemesis::Net(Fault::DropToProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_mute_three_timeouts() {
    groups::run(
        35,
        Broker::Kafka,
        Nemesis::Net(Fault::DropFromProcess),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_black_holed_three_timeouts() {
    groups::run(
        27,
        Broker::Kafka,
        Nemesis::Net(Fault::DropBoth),
        TIMEOUT * 3,
    )
    .await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_paused_three_timeouts() {
    groups::run(28, Broker::Kafka, Nemesis::Pause, TIMEOUT * 3).await;
}

#[cfg(all(feature = "nats", feature = "kafka"))]
#[tokio::test]
async fn kafka_member_rejected_for_the_timeout() {
    groups::run(29, Broker::Kafka, Nemesis::Net(Fault::RejectBoth), TIMEOUT).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn relay_black_holed_three_timeouts() {
    relay::run(31, Nemesis::Net(Fault::DropBoth), TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn relay_paused_three_timeouts() {
    relay::run(32, Nemesis::Pause, TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn relay_cut_from_its_broker_three_timeouts() {
    relay::run_from_broker(33, Fault::DropBoth, TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn relay_deaf_to_its_broker_three_timeouts() {
    relay::run_from_broker(34, Fault::DropToProcess, TIMEOUT * 3).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn relay_rejected_by_its_broker_for_the_timeout() {
    relay::run_from_broker(35, Fault::RejectBoth, TIMEOUT).await;
}

#[tokio::test]
async fn appender_black_holed_three_timeouts() {
    appender::run(41, Nemesis::Net(Fault::DropBoth), TIMEOUT * 3).await;
}

#[tokio::test]
async fn appender_paused_three_timeouts() {
    appender::run(42, Nemesis::Pause, TIMEOUT * 3).await;
}
