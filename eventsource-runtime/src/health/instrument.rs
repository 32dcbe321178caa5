//! The lag gauges, `eventsource.lag.events` and `eventsource.lag.oldest_age`, as every
//! runner, relay and consumer group records them.

use super::{ComponentKind, Lag};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::metrics;
use crate::telemetry::values::Attr;

/// Records the lag of a runner or relay (`kind`) named `name`; of one segment of it when it
/// is split (`segment`: `3/16`).
pub(crate) fn record_lag(kind: ComponentKind, name: &str, segment: Option<&str>, lag: Lag) {
    let kind = (
        attr::METRIC_ATTR_COMPONENT_KIND,
        Attr::Static(kind.as_str()),
    );
    let name = (attr::METRIC_ATTR_COMPONENT_NAME, Attr::Str(name));
    match segment {
        None => metrics::record_lag(lag.events, lag.oldest_age, [kind, name]),
        Some(segment) => {
            let segment = (attr::PROJECTION_SEGMENT, Attr::Str(segment));
            metrics::record_lag(lag.events, lag.oldest_age, [kind, name, segment]);
        }
    }
}

#[cfg(feature = "broker")]
/// Records the lag of the consumer group `name` on `system` (`rabbitmq`, `kafka`, `nats`).
pub(crate) fn record_group_lag(system: &'static str, name: &str, lag: Lag) {
    metrics::record_lag(
        lag.events,
        lag.oldest_age,
        [
            (
                attr::METRIC_ATTR_COMPONENT_KIND,
                Attr::Static(ComponentKind::ConsumerGroup.as_str()),
            ),
            (attr::METRIC_ATTR_COMPONENT_NAME, Attr::Str(name)),
            (attr::MESSAGING_SYSTEM, Attr::Static(system)),
        ],
    );
}
