//! What a consumer group asks of the thread that runs it: a debug build's frames hold every
//! future they poll, so a large future held unboxed is copied into each frame on the way
//! down, and a group that fit in release overflowed a 2 MiB thread in debug. The group must
//! leave most of a tokio worker's stack to the handlers it calls.

use std::time::Duration;

use super::{BrokerFixture, Running, counting, event_type, stored_event, until};
use crate::bus::EventBus as _;

/// The stack a group must run in, whatever the build: a quarter of a tokio worker's (2 MiB).
pub const GROUP_STACK: usize = 512 * 1024;

/// A group run by a runtime of its own on a thread of [`GROUP_STACK`] connects, handles a
/// message and stops gracefully (a group that needs more aborts the test process with
/// "has overflowed its stack").
pub async fn a_group_runs_on_a_quarter_of_a_worker_stack<F: BrokerFixture>(fixture: &F) {
    let bus = fixture.bus();
    let group = fixture.group(&bus, "mailer", &[Duration::from_millis(50)]);
    let calls = counting(&group, "send-confirmation", 0);
    let running = Running::start_on_stack(&group, GROUP_STACK).await;
    bus.publish(&[stored_event("o-1", &event_type())])
        .await
        .expect("published");
    until(fixture, "the handler ran", || {
        calls.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
}
