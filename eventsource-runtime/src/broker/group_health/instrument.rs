//! What a consumer group records when it stalls and when it moves again.

use super::GroupStalled;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::metrics;
use crate::telemetry::values::Attr;

static STALLS: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_CONSUMER_GROUP_STALLS,
    "{stall}",
    "Times a consumer group had events waiting and handled none for its stall bound",
);

/// A consumer group on `system` stalled: the WARN line and the counter.
pub(crate) fn group_stalled(system: &'static str, stalled: &GroupStalled) {
    use crate::telemetry::otel::log::log_warn;
    STALLS.add(
        1,
        [
            (attr::MESSAGING_SYSTEM, Attr::Static(system)),
            (attr::METRIC_ATTR_COMPONENT_NAME, Attr::Str(&stalled.group)),
        ],
    );
    log_warn!(
        group = stalled.group.as_str(),
        system,
        waiting = stalled.waiting,
        idle_s = stalled.idle.as_secs(),
        broker = stalled.broker.as_str(),
        "consumer group stalled: events wait and none was handled; connecting again"
    );
}

/// A stalled consumer group moves again: one INFO line.
pub(crate) fn group_resumed(system: &'static str, group: &str, after: std::time::Duration) {
    use crate::telemetry::otel::log::log_info;
    log_info!(
        group,
        system,
        stalled_s = after.as_secs(),
        "consumer group moves again"
    );
}
