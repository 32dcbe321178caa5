//! The `consumer` child: a member of a NATS JetStream consumer group, recording in its
//! history the start and the end of every event it handles (at least once: its effect is
//! the record itself).

use std::sync::Arc;

use eventsource_runtime::bus::{HandlerError, Subscribe as _};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::nats::NatsBus;
use eventsource_test_support::history::{Call, Handling};

use super::{PROJECTION, Told, terminated};

/// The broker's URL (the host side of the child's namespace, or loopback).
pub const BROKER: &str = "EVENTSOURCE_PARTITION_CHILD_BROKER";
/// Messages a member takes ahead: with a takeover, the most it may handle again.
pub const PREFETCH: u16 = 16;
/// How long handling an event takes.
const HANDLING: std::time::Duration = std::time::Duration::from_millis(30);
/// The group's name.
const GROUP: &str = "partition";

/// Runs the group member until SIGTERM.
pub async fn run(told: Told) {
    let Told {
        name,
        timeout,
        history,
        ..
    } = told;
    let url = std::env::var(BROKER).unwrap();
    let group = NatsBus::new(&url)
        .unwrap()
        .consumer_group(GROUP)
        .prefetch(PREFETCH)
        .ack_wait(timeout);
    group.declare().await.unwrap();
    let recording = Arc::clone(&history);
    group.subscribe_fn(PROJECTION, move |event: EventEnvelope| {
        let history = Arc::clone(&recording);
        async move {
            let handling = Handling::of(PROJECTION, &event);
            let started = history
                .invoke(Call::HandleStart(handling))
                .map_err(HandlerError::new)?;
            // Slower than the appends come, so that a member always has messages in hand
            // and waiting when it is cut off.
            tokio::time::sleep(HANDLING).await;
            history.ok(&started).map_err(HandlerError::new)?;
            Ok::<(), HandlerError>(())
        }
    });
    group.run(terminated()).await.unwrap();
    println!("{name} stopped");
}
