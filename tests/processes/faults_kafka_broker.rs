//! The Kafka broker process killed (SIGKILL) and started again while the `distributed`
//! example's consumer process handles the stream and its relay process publishes it
//! (`tests/common/faults/`): neither is restarted, both carry on by themselves, every
//! stored event is handled, counted by event id, within a bound after the restart; the
//! idempotent confirmation runs once, the CRM update and the shipping notice at least once
//! (their duplicates reported).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! broker disturbs no other test. Needs `EVENTSOURCE_KAFKA_BROKERS` and a local Apache Kafka
//! node listening on its port (`java ... kafka.Kafka <server.properties>`, as `.ci/run`
//! starts it) that this test may kill and start again (same argv, same working directory,
//! output appended to `kafka.log` there; a guard starts it again if the test fails while it
//! is down). Skipped visibly otherwise, unless `EVENTSOURCE_REQUIRE_KAFKA=1`: then it fails.

use eventsource_test_support::faults;
use eventsource_test_support::processes;

use std::time::Duration;

use crate::faults::Bounds;
use crate::processes::BrokerKind;

#[test]
fn a_broker_killed_mid_stream_loses_nothing() {
    let test = "faults-broker";
    let Some(broker) = faults::local_broker(test, BrokerKind::Kafka) else {
        return;
    };
    let bounds = Bounds {
        progress: Duration::from_secs(60),
        recovery: Duration::from_secs(90),
    };
    faults::a_broker_killed_mid_stream_loses_nothing(
        BrokerKind::Kafka,
        broker,
        400,
        Duration::from_secs(5),
        bounds,
    );
}
