//! The NATS server process killed (SIGKILL) and started again while the `distributed`
//! example's consumer process handles the stream and its relay process publishes it
//! (`tests/common/faults/`): neither is restarted, both carry on by themselves, every
//! stored event is handled, counted by event id, within a bound after the restart; the
//! idempotent confirmation runs once, the CRM update and the shipping notice at least once.
//! The server forgets the acknowledgements of the seconds before the kill
//! (`tests/processes/nats_restart.rs`): those messages come again, reported as duplicates.
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! server disturbs no other test. Needs `EVENTSOURCE_NATS_URL` and a local `nats-server`
//! process listening on its port that this test may kill and start again (same argv, same
//! working directory, in a process group of its own, its output appended to
//! `eventsource-nats-restart.log` in the temporary directory; a guard starts it again if
//! the test fails while it is down). Skipped visibly otherwise, unless
//! `EVENTSOURCE_REQUIRE_NATS=1`: then it fails.

use eventsource_test_support::faults;
use eventsource_test_support::processes;

use std::time::Duration;

use crate::faults::Bounds;
use crate::processes::BrokerKind;

#[test]
fn a_server_killed_mid_stream_loses_nothing() {
    let test = "faults-broker";
    let Some(server) = faults::local_broker(test, BrokerKind::Nats) else {
        return;
    };
    let bounds = Bounds {
        progress: Duration::from_secs(45),
        recovery: Duration::from_secs(60),
    };
    faults::a_broker_killed_mid_stream_loses_nothing(
        BrokerKind::Nats,
        server,
        400,
        Duration::from_secs(3),
        bounds,
    );
}
