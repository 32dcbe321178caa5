//! The contract's metric instruments, created from the global meter provider.
//!
//! Instruments are created on first use and re-created when [`rebind`] is called, which
//! `telemetry::init()` and the test capture do after installing a meter provider: metrics
//! recorded before any provider is installed go nowhere, as with any OpenTelemetry API.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use super::attributes as attr;

/// The meter (instrumentation scope) name of every instrument.
pub const METER_NAME: &str = "eventsource";

/// The contract's instruments.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) command_duration: Histogram<f64>,
    pub(crate) command_total: Counter<u64>,
    pub(crate) events_produced: Counter<u64>,
    pub(crate) query_duration: Histogram<f64>,
    pub(crate) query_total: Counter<u64>,
    pub(crate) query_result_size: Histogram<u64>,
    pub(crate) projection_lag: Histogram<f64>,
    pub(crate) trace_context_invalid: Counter<u64>,
    pub(crate) bus_published: Counter<u64>,
    pub(crate) bus_consumed: Counter<u64>,
    pub(crate) bus_handler_duration: Histogram<f64>,
}

static INSTRUMENTS: RwLock<Option<Arc<Instruments>>> = RwLock::new(None);

impl Instruments {
    fn new() -> Self {
        let meter = opentelemetry::global::meter(METER_NAME);
        Self {
            command_duration: meter
                .f64_histogram(attr::METRIC_COMMAND_DURATION)
                .with_unit("s")
                .with_description("Duration of command handling: load, decide, save, deliver")
                .build(),
            command_total: meter
                .u64_counter(attr::METRIC_COMMAND_TOTAL)
                .with_unit("{command}")
                .with_description("Commands handled")
                .build(),
            events_produced: meter
                .u64_counter(attr::METRIC_EVENTS_PRODUCED)
                .with_unit("{event}")
                .with_description("Events produced by commands")
                .build(),
            query_duration: meter
                .f64_histogram(attr::METRIC_QUERY_DURATION)
                .with_unit("s")
                .with_description("Duration of queries")
                .build(),
            query_total: meter
                .u64_counter(attr::METRIC_QUERY_TOTAL)
                .with_unit("{query}")
                .with_description("Queries run")
                .build(),
            query_result_size: meter
                .u64_histogram(attr::METRIC_QUERY_RESULT_SIZE)
                .with_unit("{item}")
                .with_description("Items returned by collection queries")
                .build(),
            projection_lag: meter
                .f64_histogram(attr::METRIC_PROJECTION_LAG)
                .with_unit("s")
                .with_description("Time from an event's timestamp to its projection")
                .build(),
            trace_context_invalid: meter
                .u64_counter(attr::METRIC_TRACE_CONTEXT_INVALID)
                .with_unit("{event}")
                .with_description(
                    "Consumed events whose stored trace context was missing or malformed",
                )
                .build(),
            bus_published: meter
                .u64_counter(attr::METRIC_BUS_MESSAGES_PUBLISHED)
                .with_unit("{message}")
                .with_description("Messages published on an event bus")
                .build(),
            bus_consumed: meter
                .u64_counter(attr::METRIC_BUS_MESSAGES_CONSUMED)
                .with_unit("{message}")
                .with_description("Messages an event bus delivered to its handlers")
                .build(),
            bus_handler_duration: meter
                .f64_histogram(attr::METRIC_BUS_HANDLER_DURATION)
                .with_unit("s")
                .with_description("Duration of one event handler handling one message")
                .build(),
        }
    }
}

/// The instruments, created from the global meter provider on first use.
pub(crate) fn instruments() -> Arc<Instruments> {
    if let Some(existing) = INSTRUMENTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(existing);
    }
    let mut slot = INSTRUMENTS.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(slot.get_or_insert_with(|| Arc::new(Instruments::new())))
}

/// Re-creates the instruments from the current global meter provider. Call it after
/// `opentelemetry::global::set_meter_provider` if anything was recorded before.
pub fn rebind() {
    *INSTRUMENTS.write().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Records one handled command.
pub(crate) fn record_command(
    command_type: &'static str,
    success: bool,
    events: usize,
    elapsed: Duration,
) {
    let instruments = instruments();
    let status = if success {
        attr::STATUS_SUCCESS
    } else {
        attr::STATUS_ERROR
    };
    let attributes = [
        KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type),
        KeyValue::new(attr::METRIC_ATTR_COMMAND_STATUS, status),
    ];
    instruments
        .command_duration
        .record(elapsed.as_secs_f64(), &attributes);
    instruments.command_total.add(1, &attributes);
    if events > 0 {
        instruments.events_produced.add(
            events as u64,
            &[KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type)],
        );
    }
}

/// Records one query (and its result size, for a collection).
pub(crate) fn record_query(
    query_type: &'static str,
    success: bool,
    elapsed: Duration,
    result_size: Option<usize>,
) {
    let instruments = instruments();
    let status = if success {
        attr::STATUS_SUCCESS
    } else {
        attr::STATUS_ERROR
    };
    let attributes = [
        KeyValue::new(attr::METRIC_ATTR_QUERY_TYPE, query_type),
        KeyValue::new(attr::METRIC_ATTR_QUERY_STATUS, status),
    ];
    instruments
        .query_duration
        .record(elapsed.as_secs_f64(), &attributes);
    instruments.query_total.add(1, &attributes);
    if let Some(size) = result_size {
        instruments.query_result_size.record(
            size as u64,
            &[KeyValue::new(attr::METRIC_ATTR_QUERY_TYPE, query_type)],
        );
    }
}

/// Records one projected event's lag.
pub(crate) fn record_projection_lag(projection: &str, event_type: &str, lag: Duration) {
    instruments().projection_lag.record(
        lag.as_secs_f64(),
        &[
            KeyValue::new(attr::METRIC_ATTR_PROJECTION_NAME, projection.to_owned()),
            KeyValue::new(attr::METRIC_ATTR_EVENT_TYPE, event_type.to_owned()),
        ],
    );
}

/// The attributes of the bus message counters: system, destination, event type.
fn bus_message_attributes(
    system: &'static str,
    destination: &Arc<str>,
    event_type: &str,
) -> [KeyValue; 3] {
    [
        KeyValue::new(attr::MESSAGING_SYSTEM, system),
        KeyValue::new(attr::MESSAGING_DESTINATION_NAME, Arc::clone(destination)),
        KeyValue::new(attr::METRIC_ATTR_EVENT_TYPE, event_type.to_owned()),
    ]
}

/// Records one message published on an event bus.
pub(crate) fn record_bus_published(system: &'static str, destination: &Arc<str>, event_type: &str) {
    instruments()
        .bus_published
        .add(1, &bus_message_attributes(system, destination, event_type));
}

/// Records one message delivered to an event bus's handlers.
pub(crate) fn record_bus_consumed(system: &'static str, destination: &Arc<str>, event_type: &str) {
    instruments()
        .bus_consumed
        .add(1, &bus_message_attributes(system, destination, event_type));
}

/// Records how long one handler took with one message (failed or not).
pub(crate) fn record_bus_handler(handler: &str, event_type: &str, elapsed: Duration) {
    instruments().bus_handler_duration.record(
        elapsed.as_secs_f64(),
        &[
            KeyValue::new(attr::METRIC_ATTR_HANDLER_NAME, handler.to_owned()),
            KeyValue::new(attr::METRIC_ATTR_EVENT_TYPE, event_type.to_owned()),
        ],
    );
}
