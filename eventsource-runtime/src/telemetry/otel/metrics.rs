//! The contract's metric instruments, created from the global meter provider.
//!
//! The instruments are made once per meter provider installation and read without a lock
//! (`arc-swap`): `telemetry::init()` and the test capture call [`rebind`] after installing
//! a provider. An application installing its own global meter provider does it before its
//! first command, as with any OpenTelemetry instrumentation (what is recorded before goes
//! to the provider that was global then, usually the no-op one). Nothing is recorded while
//! the process switch is off.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Gauge, Histogram};

use super::value::otel_value;
use crate::telemetry::attributes as attr;
use crate::telemetry::toggles;
use crate::telemetry::values::{Attr, Counter, RESULT_SIZE_BOUNDARIES, Timing};

/// The contract's instruments, indexed by [`Counter`] and [`Timing`].
struct Instruments {
    counters: [OtelCounter<u64>; Counter::ALL.len()],
    timings: [Histogram<f64>; Timing::ALL.len()],
    query_result_size: Histogram<u64>,
    lag_events: Gauge<u64>,
    lag_oldest_age: Gauge<f64>,
}

static INSTRUMENTS: ArcSwapOption<Instruments> = ArcSwapOption::const_empty();

impl Instruments {
    fn new() -> Self {
        let meter = opentelemetry::global::meter(attr::METER_NAME);
        Self {
            counters: Counter::ALL.map(|counter| {
                let (name, unit, description) = counter.describe();
                meter
                    .u64_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build()
            }),
            timings: Timing::ALL.map(|timing| {
                let (name, description) = timing.describe();
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(description)
                    .with_boundaries(timing.boundaries().to_vec())
                    .build()
            }),
            query_result_size: meter
                .u64_histogram(attr::METRIC_QUERY_RESULT_SIZE)
                .with_unit("{item}")
                .with_description("Items returned by collection queries")
                .with_boundaries(RESULT_SIZE_BOUNDARIES.to_vec())
                .build(),
            lag_events: meter
                .u64_gauge(attr::METRIC_LAG_EVENTS)
                .with_unit("{event}")
                .with_description("Events a projection runner, relay or consumer group has not handled yet")
                .build(),
            lag_oldest_age: meter
                .f64_gauge(attr::METRIC_LAG_OLDEST_AGE)
                .with_unit("s")
                .with_description("Age of the oldest event a projection runner, relay or consumer group has not handled yet")
                .build(),
        }
    }
}

/// Runs `record` with the instruments (made on first use) when the process switch is on.
#[inline]
fn with_instruments(record: impl FnOnce(&Instruments)) {
    if !toggles::is_enabled() {
        return;
    }
    let guard = INSTRUMENTS.load();
    match guard.as_deref() {
        Some(instruments) => record(instruments),
        None => {
            drop(guard);
            let made = Arc::new(Instruments::new());
            // Another thread may have made them meanwhile: theirs and ours are alike.
            INSTRUMENTS.compare_and_swap(&None::<Arc<Instruments>>, Some(Arc::clone(&made)));
            record(&made);
        }
    }
}

/// The attributes of one measurement.
#[inline]
fn key_values<const N: usize>(attributes: [(&'static str, Attr<'_>); N]) -> [KeyValue; N] {
    attributes.map(|(key, value)| KeyValue::new(key, otel_value(value)))
}

/// Adds `n` to `counter`.
#[inline]
pub(crate) fn add<const N: usize>(
    counter: Counter,
    n: u64,
    attributes: [(&'static str, Attr<'_>); N],
) {
    with_instruments(|i| i.counters[counter as usize].add(n, &key_values(attributes)));
}

/// Records a duration in `timing` (seconds).
#[inline]
pub(crate) fn record_seconds<const N: usize>(
    timing: Timing,
    elapsed: Duration,
    attributes: [(&'static str, Attr<'_>); N],
) {
    with_instruments(|i| {
        i.timings[timing as usize].record(elapsed.as_secs_f64(), &key_values(attributes));
    });
}

/// Records a collection query's result size in `cqrs.query.result_size`.
#[inline]
pub(crate) fn record_result_size<const N: usize>(
    size: u64,
    attributes: [(&'static str, Attr<'_>); N],
) {
    with_instruments(|i| i.query_result_size.record(size, &key_values(attributes)));
}

/// Records a component's lag in `eventsource.lag.events` and `eventsource.lag.oldest_age`.
#[inline]
pub(crate) fn record_lag<const N: usize>(
    events: u64,
    oldest_age: Duration,
    attributes: [(&'static str, Attr<'_>); N],
) {
    with_instruments(|i| {
        let attributes = key_values(attributes);
        i.lag_events.record(events, &attributes);
        i.lag_oldest_age
            .record(oldest_age.as_secs_f64(), &attributes);
    });
}

/// Records several measurements sharing `attributes`, with the instruments looked up and
/// the attributes converted once (nothing when the process switch is off): what one outcome
/// records in more than one instrument.
#[inline]
pub(crate) fn record<const N: usize>(
    attributes: [(&'static str, Attr<'_>); N],
    measure: impl FnOnce(&Recorder<'_, N>),
) {
    with_instruments(|instruments| {
        measure(&Recorder {
            instruments,
            attributes: key_values(attributes),
        });
    });
}

/// The instruments and the shared attributes, lent to [`record`]'s closure.
pub(crate) struct Recorder<'a, const N: usize> {
    instruments: &'a Instruments,
    attributes: [KeyValue; N],
}

impl<const N: usize> Recorder<'_, N> {
    /// Adds `n` to `counter`, with all the attributes.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.add_with_first(counter, n, N);
    }

    /// Adds `n` to `counter`, with only the first `len` of the attributes.
    #[inline]
    pub(crate) fn add_with_first(&self, counter: Counter, n: u64, len: usize) {
        let attributes = &self.attributes[..len.min(N)];
        self.instruments.counters[counter as usize].add(n, attributes);
    }

    /// Records a duration in `timing` (seconds), with all the attributes.
    #[inline]
    pub(crate) fn seconds(&self, timing: Timing, elapsed: Duration) {
        self.instruments.timings[timing as usize].record(elapsed.as_secs_f64(), &self.attributes);
    }
}

/// Makes the instruments again from the current global meter provider (after
/// `opentelemetry::global::set_meter_provider`).
pub(crate) fn rebind() {
    INSTRUMENTS.store(Some(Arc::new(Instruments::new())));
}
