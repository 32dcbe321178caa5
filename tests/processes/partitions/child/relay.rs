//! The `relay` child: the relay from the store to a NATS JetStream stream, holding the
//! relay's lease on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::relay::Relay;

use super::consumer::BROKER;
use super::{Told, terminated};

/// Events a read of the relay brings: with a takeover, the most it may publish again.
pub const RELAY_BATCH: usize = 50;

/// Runs the relay until SIGTERM.
pub async fn run(told: Told) {
    let Told {
        name,
        timeout,
        store,
        ..
    } = told;
    // The acknowledgement's wait and the longest backoff scaled as the lease is: 10 s
    // each by default.
    let bus = NatsBus::new(&std::env::var(BROKER).unwrap())
        .unwrap()
        .with_ack_timeout(timeout);
    bus.declare().await.unwrap();
    let checkpoints = store.checkpoint_store().lease_timeout(timeout);
    let relay = Relay::new(Arc::new(store), Arc::new(checkpoints), Arc::new(bus))
        .batch_size(RELAY_BATCH)
        .poll_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(100), timeout);
    relay.run(terminated()).await.unwrap();
    println!("{name} stopped");
}
