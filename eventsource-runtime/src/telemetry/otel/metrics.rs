//! The means to declare and record metric instruments. Each component declares its own,
//! as `static`s in its `instrument` module, where it records them:
//!
//! ```ignore
//! /// `cqrs.query.total`.
//! static QUERIES: metrics::Counter =
//!     metrics::Counter::new(attr::METRIC_QUERY_TOTAL, "{query}", "Queries run");
//!
//! QUERIES.add(1, [(attr::METRIC_ATTR_QUERY_TYPE, Attr::Static(query_type))]);
//! ```
//!
//! The kinds: [`Counter`] (`u64`), [`Histogram`] (`u64`), [`DurationHistogram`] and
//! [`DurationGauge`] (seconds, from a `Duration`), [`Gauge`] (`u64`). A histogram's
//! boundaries are given as the instrument's advice, so that an application's own view still
//! wins. Nothing is recorded while the process switch is off; without the `tracing` feature
//! the same names record nothing (`otel_off.rs`).
//!
//! An instrument is made from the global meter provider when it is first recorded, and
//! read without a lock afterwards (`arc-swap`, one load per measurement or per [`record`]).
//! `telemetry::init()` and the test capture call [`rebind`] after installing a provider:
//! every instrument declared so far is made again from it. An application installing its
//! own global meter provider does it before its first command, as with any OpenTelemetry
//! instrumentation (what is recorded before goes to the provider that was global then,
//! usually the no-op one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    Counter as OtelCounter, Gauge as OtelGauge, Histogram as OtelHistogram, Meter,
};

use super::value::otel_value;
use crate::telemetry::attributes as attr;
use crate::telemetry::toggles;
use crate::telemetry::values::Attr;

/// What an instrument is, as its declaration gives it.
struct Spec {
    kind: Kind,
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    boundaries: &'static [f64],
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Histogram,
    DurationHistogram,
    Gauge,
    DurationGauge,
}

/// One declared instrument: its spec and, once first recorded, its place in [`Bound`].
struct Declared {
    spec: Spec,
    /// 1 + its index in [`Bound::made`]; 0 until it is first recorded.
    slot: AtomicUsize,
}

impl Declared {
    const fn new(
        kind: Kind,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        boundaries: &'static [f64],
    ) -> Self {
        Self {
            spec: Spec {
                kind,
                name,
                unit,
                description,
                boundaries,
            },
            slot: AtomicUsize::new(0),
        }
    }
}

/// An instrument made from a meter.
#[derive(Clone)]
enum Made {
    Counter(OtelCounter<u64>),
    Histogram(OtelHistogram<u64>),
    DurationHistogram(OtelHistogram<f64>),
    Gauge(OtelGauge<u64>),
    DurationGauge(OtelGauge<f64>),
}

impl Made {
    fn new(meter: &Meter, spec: &Spec) -> Self {
        let Spec {
            kind,
            name,
            unit,
            description,
            boundaries,
        } = *spec;
        match kind {
            Kind::Counter => Self::Counter(
                meter
                    .u64_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build(),
            ),
            Kind::Histogram => Self::Histogram(
                meter
                    .u64_histogram(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_boundaries(boundaries.to_vec())
                    .build(),
            ),
            Kind::DurationHistogram => Self::DurationHistogram(
                meter
                    .f64_histogram(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_boundaries(boundaries.to_vec())
                    .build(),
            ),
            Kind::Gauge => Self::Gauge(
                meter
                    .u64_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build(),
            ),
            Kind::DurationGauge => Self::DurationGauge(
                meter
                    .f64_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build(),
            ),
        }
    }
}

/// The instruments made so far from one meter provider, in the order they were declared
/// to it (a [`Declared::slot`] indexes this).
struct Bound {
    meter: Meter,
    made: Vec<Made>,
}

impl Bound {
    #[inline]
    fn get(&self, declared: &Declared) -> Option<&Made> {
        let slot = declared.slot.load(Ordering::Relaxed);
        self.made.get(slot.wrapping_sub(1))
    }
}

static BOUND: ArcSwapOption<Bound> = ArcSwapOption::const_empty();

/// Every instrument recorded so far, in slot order: what [`rebind`] makes again. Taken only
/// the first time an instrument is recorded and at [`rebind`], never on a measurement.
static DECLARED: Mutex<Vec<&'static Declared>> = Mutex::new(Vec::new());

/// Gives `declared` a slot and makes it (with the current instruments' meter, or the
/// global one when none was made yet); returns the instruments that hold it.
#[cold]
#[inline(never)]
fn bind(declared: &'static Declared) -> Arc<Bound> {
    let mut all = DECLARED.lock().unwrap_or_else(PoisonError::into_inner);
    if declared.slot.load(Ordering::Relaxed) == 0 {
        all.push(declared);
        declared.slot.store(all.len(), Ordering::Relaxed);
    }
    let current = BOUND.load_full();
    if let Some(bound) = &current
        && bound.made.len() == all.len()
    {
        return Arc::clone(bound);
    }
    let (meter, mut made) = match current {
        Some(bound) => (bound.meter.clone(), bound.made.clone()),
        None => (opentelemetry::global::meter(attr::METER_NAME), Vec::new()),
    };
    made.extend(all[made.len()..].iter().map(|d| Made::new(&meter, &d.spec)));
    let bound = Arc::new(Bound { meter, made });
    BOUND.store(Some(Arc::clone(&bound)));
    bound
}

/// Makes every instrument recorded so far again from the current global meter provider
/// (after `opentelemetry::global::set_meter_provider`).
pub(crate) fn rebind() {
    let all = DECLARED.lock().unwrap_or_else(PoisonError::into_inner);
    let meter = opentelemetry::global::meter(attr::METER_NAME);
    let made = all.iter().map(|d| Made::new(&meter, &d.spec)).collect();
    BOUND.store(Some(Arc::new(Bound { meter, made })));
}

/// Runs `record` with the instruments when the process switch is on.
#[inline]
fn with_bound(record: impl FnOnce(&Bound)) {
    if !toggles::is_enabled() {
        return;
    }
    match BOUND.load().as_deref() {
        Some(bound) => record(bound),
        // Nothing made yet: `record` binds what it needs.
        None => record(&bind_none()),
    }
}

/// The instruments when none was made yet (an empty set, made from the global meter).
#[cold]
#[inline(never)]
fn bind_none() -> Arc<Bound> {
    let _all = DECLARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(bound) = BOUND.load_full() {
        return bound;
    }
    let bound = Arc::new(Bound {
        meter: opentelemetry::global::meter(attr::METER_NAME),
        made: Vec::new(),
    });
    BOUND.store(Some(Arc::clone(&bound)));
    bound
}

/// Runs `use_it` with `declared` as `bound` holds it (made now when it does not yet).
#[inline]
fn with_made(bound: &Bound, declared: &'static Declared, use_it: impl FnOnce(&Made)) {
    match bound.get(declared) {
        Some(made) => use_it(made),
        None => {
            let bound = bind(declared);
            if let Some(made) = bound.get(declared) {
                use_it(made);
            }
        }
    }
}

/// The attributes of one measurement.
#[inline]
fn key_values<const N: usize>(attributes: [(&'static str, Attr<'_>); N]) -> [KeyValue; N] {
    attributes.map(|(key, value)| KeyValue::new(key, otel_value(value)))
}

/// A counter of `u64`s.
pub(crate) struct Counter(Declared);

impl Counter {
    /// Declares the counter `name` (made when first recorded).
    pub(crate) const fn new(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
    ) -> Self {
        Self(Declared::new(Kind::Counter, name, unit, description, &[]))
    }

    /// Adds `n`, with `attributes`.
    #[inline]
    pub(crate) fn add<const N: usize>(
        &'static self,
        n: u64,
        attributes: [(&'static str, Attr<'_>); N],
    ) {
        with_bound(|bound| counter(bound, self, |c| c.add(n, &key_values(attributes))));
    }
}

/// A histogram of `u64`s.
pub(crate) struct Histogram(Declared);

impl Histogram {
    /// Declares the histogram `name` with its bucket `boundaries` (made when first
    /// recorded).
    pub(crate) const fn new(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        boundaries: &'static [f64],
    ) -> Self {
        Self(Declared::new(
            Kind::Histogram,
            name,
            unit,
            description,
            boundaries,
        ))
    }

    /// Records `value`, with `attributes`.
    #[inline]
    pub(crate) fn record<const N: usize>(
        &'static self,
        value: u64,
        attributes: [(&'static str, Attr<'_>); N],
    ) {
        with_bound(|bound| {
            with_made(bound, &self.0, |made| {
                if let Made::Histogram(h) = made {
                    h.record(value, &key_values(attributes));
                }
            });
        });
    }
}

/// A histogram of durations, in seconds (`s`).
pub(crate) struct DurationHistogram(Declared);

impl DurationHistogram {
    /// Declares the histogram `name` with its bucket `boundaries`, in seconds (made when
    /// first recorded).
    pub(crate) const fn new(
        name: &'static str,
        description: &'static str,
        boundaries: &'static [f64],
    ) -> Self {
        Self(Declared::new(
            Kind::DurationHistogram,
            name,
            "s",
            description,
            boundaries,
        ))
    }

    /// Records `elapsed`, with `attributes`.
    #[inline]
    pub(crate) fn record<const N: usize>(
        &'static self,
        elapsed: Duration,
        attributes: [(&'static str, Attr<'_>); N],
    ) {
        with_bound(|bound| {
            duration_histogram(bound, self, |h| {
                h.record(elapsed.as_secs_f64(), &key_values(attributes));
            })
        });
    }
}

/// A gauge of `u64`s.
pub(crate) struct Gauge(Declared);

impl Gauge {
    /// Declares the gauge `name` (made when first recorded).
    pub(crate) const fn new(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
    ) -> Self {
        Self(Declared::new(Kind::Gauge, name, unit, description, &[]))
    }
}

/// A gauge of durations, in seconds (`s`).
pub(crate) struct DurationGauge(Declared);

impl DurationGauge {
    /// Declares the gauge `name` (made when first recorded).
    pub(crate) const fn new(name: &'static str, description: &'static str) -> Self {
        Self(Declared::new(
            Kind::DurationGauge,
            name,
            "s",
            description,
            &[],
        ))
    }
}

/// `declared`, a counter, as `bound` holds it.
#[inline]
fn counter(bound: &Bound, declared: &'static Counter, add: impl FnOnce(&OtelCounter<u64>)) {
    with_made(bound, &declared.0, |made| {
        if let Made::Counter(counter) = made {
            add(counter);
        }
    });
}

/// `declared`, a histogram of durations, as `bound` holds it.
#[inline]
fn duration_histogram(
    bound: &Bound,
    declared: &'static DurationHistogram,
    record: impl FnOnce(&OtelHistogram<f64>),
) {
    with_made(bound, &declared.0, |made| {
        if let Made::DurationHistogram(histogram) = made {
            record(histogram);
        }
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
    with_bound(|bound| {
        measure(&Recorder {
            bound,
            attributes: key_values(attributes),
        });
    });
}

/// The instruments and the shared attributes, lent to [`record`]'s closure.
pub(crate) struct Recorder<'a, const N: usize> {
    bound: &'a Bound,
    attributes: [KeyValue; N],
}

impl<const N: usize> Recorder<'_, N> {
    /// Adds `n` to `counter`, with all the attributes.
    #[inline]
    pub(crate) fn add(&self, counter: &'static Counter, n: u64) {
        self.add_with_first(counter, n, N);
    }

    /// Adds `n` to `counter`, with only the first `len` of the attributes.
    #[inline]
    pub(crate) fn add_with_first(&self, declared: &'static Counter, n: u64, len: usize) {
        let attributes = &self.attributes[..len.min(N)];
        counter(self.bound, declared, |counter| counter.add(n, attributes));
    }

    /// Records `elapsed` in `histogram`, with all the attributes.
    #[inline]
    pub(crate) fn duration(&self, histogram: &'static DurationHistogram, elapsed: Duration) {
        duration_histogram(self.bound, histogram, |h| {
            h.record(elapsed.as_secs_f64(), &self.attributes);
        });
    }

    /// Records `value` in `gauge`, with all the attributes.
    #[inline]
    pub(crate) fn gauge(&self, gauge: &'static Gauge, value: u64) {
        with_made(self.bound, &gauge.0, |made| {
            if let Made::Gauge(gauge) = made {
                gauge.record(value, &self.attributes);
            }
        });
    }

    /// Records `value`, in seconds, in `gauge`, with all the attributes.
    #[inline]
    pub(crate) fn duration_gauge(&self, gauge: &'static DurationGauge, value: Duration) {
        with_made(self.bound, &gauge.0, |made| {
            if let Made::DurationGauge(gauge) = made {
                gauge.record(value.as_secs_f64(), &self.attributes);
            }
        });
    }
}
