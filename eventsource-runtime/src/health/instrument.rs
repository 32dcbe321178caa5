//! The lag gauges, `eventsource.lag.events` and `eventsource.lag.oldest_age`, as every
//! runner, relay and consumer group records them, and `eventsource.store.mark_held`, as
//! runners and relays record it with their health.

use std::time::Duration;

use super::{ComponentKind, Lag};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::metrics;
use crate::telemetry::values::Attr;

static LAG_EVENTS: metrics::Gauge = metrics::Gauge::new(
    attr::METRIC_LAG_EVENTS,
    "{event}",
    "Events a projection runner, relay or consumer group has not handled yet",
);

static LAG_OLDEST_AGE: metrics::DurationGauge = metrics::DurationGauge::new(
    attr::METRIC_LAG_OLDEST_AGE,
    "Age of the oldest event a projection runner, relay or consumer group has not handled yet",
);

static MARK_HELD: metrics::DurationGauge = metrics::DurationGauge::new(
    attr::METRIC_STORE_MARK_HELD,
    "How long the session holding the store's high-water mark back has held it, as a \
     projection runner or relay reading the store last saw (0: nothing holds it)",
);

/// Records how long the store's high-water mark has been held, as the runner or relay
/// (`kind`) named `name` saw it.
pub(crate) fn record_mark_held(kind: ComponentKind, name: &str, held: Duration) {
    metrics::record(
        [
            (
                attr::METRIC_ATTR_COMPONENT_KIND,
                Attr::Static(kind.as_str()),
            ),
            (attr::METRIC_ATTR_COMPONENT_NAME, Attr::Str(name)),
        ],
        |metrics| metrics.duration_gauge(&MARK_HELD, held),
    );
}

/// Records `lag` in both gauges, with `attributes` (converted once).
fn record<const N: usize>(lag: Lag, attributes: [(&'static str, Attr<'_>); N]) {
    metrics::record(attributes, |metrics| {
        metrics.gauge(&LAG_EVENTS, lag.events);
        metrics.duration_gauge(&LAG_OLDEST_AGE, lag.oldest_age);
    });
}

/// Records the lag of a runner or relay (`kind`) named `name`; of one segment of it when it
/// is split (`segment`: `3/16`).
pub(crate) fn record_lag(kind: ComponentKind, name: &str, segment: Option<&str>, lag: Lag) {
    let kind = (
        attr::METRIC_ATTR_COMPONENT_KIND,
        Attr::Static(kind.as_str()),
    );
    let name = (attr::METRIC_ATTR_COMPONENT_NAME, Attr::Str(name));
    match segment {
        None => record(lag, [kind, name]),
        Some(segment) => {
            let segment = (attr::PROJECTION_SEGMENT, Attr::Str(segment));
            record(lag, [kind, name, segment]);
        }
    }
}

#[cfg(feature = "broker")]
/// Records the lag of the consumer group `name` on `system` (`rabbitmq`, `kafka`, `nats`).
pub(crate) fn record_group_lag(system: &'static str, name: &str, lag: Lag) {
    record(
        lag,
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
