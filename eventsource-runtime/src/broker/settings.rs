//! What the broker buses' builders share: their settings behind one `Arc`, copied when a
//! clone of the bus holds them too, and the defaults of their groups.

use std::sync::Arc;
use std::time::Duration;

use crate::bus::BusTelemetry;

/// The waits before the redeliveries of a failed message every broker's consumer groups
/// start with: 1 s, 5 s, 30 s (four deliveries in all, then the dead letters).
pub(crate) const DEFAULT_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// How many times a consumer group with these retry `delays` delivers a message to a
/// failing handler before it is dead-lettered: once more than there are delays.
pub(crate) fn max_deliveries(delays: &[Duration]) -> u32 {
    u32::try_from(delays.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// The telemetry of a consumer group: its bus's, naming the group by `id`, the name the
/// broker knows it by (`messaging.consumer.group.name`: Kafka's `group.id`, the NATS
/// durable consumer, the RabbitMQ queue), not the short name the application gave it.
pub(crate) fn group_telemetry(bus: &BusTelemetry, id: &str) -> BusTelemetry {
    let mut telemetry = bus.clone();
    telemetry.consumer_group = Some(id.to_owned());
    telemetry
}

/// `shared` changed by `change`: itself when no other handle holds it, else a `fresh`
/// copy of it (made by the bus: its settings, none of its connections).
pub(crate) fn configured<S>(
    shared: Arc<S>,
    fresh: impl FnOnce(&S) -> S,
    change: impl FnOnce(&mut S),
) -> Arc<S> {
    let mut shared = Arc::try_unwrap(shared).unwrap_or_else(|shared| fresh(&shared));
    change(&mut shared);
    Arc::new(shared)
}
