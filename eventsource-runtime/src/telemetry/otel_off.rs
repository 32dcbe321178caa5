//! Without the `tracing` feature: the names of `otel/`, recording nothing. Every call is an
//! empty inline function, so the components' telemetry compiles away.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use crate::telemetry::values::{Attr, Kind, SpanName};

/// Stands for a span about to start.
pub(crate) struct SpanStart<'a>(PhantomData<&'a ()>);

impl<'a> SpanStart<'a> {
    #[inline(always)]
    pub(crate) fn new(_: bool, _: SpanName<'a>, _: Kind) -> Self {
        Self(PhantomData)
    }

    /// Nothing is ever recorded.
    #[cfg(any(feature = "kafka", feature = "rabbitmq"))]
    #[inline(always)]
    pub(crate) fn would_record(_: bool) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn root(&mut self) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn remote_parent<M: ?Sized>(&mut self, _: &M) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn link<M: ?Sized>(&mut self, _: &M, _: &[(&'static str, Attr<'_>)]) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn attr(&mut self, _: &'static str, _: Attr<'_>) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn str(&mut self, _: &'static str, _: &str) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn static_str(&mut self, _: &'static str, _: &'static str) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn stream<S>(&mut self, _: &S) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn int(&mut self, _: &'static str, _: impl TryInto<i64>) -> &mut Self {
        self
    }

    #[inline(always)]
    pub(crate) fn is_inert(&self) -> bool {
        true
    }

    #[inline(always)]
    pub(crate) fn start(&mut self) -> Span {
        Span
    }
}

/// Stands for a span.
pub(crate) struct Span;

impl Span {
    #[inline(always)]
    pub(crate) fn none() -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn is_recording(&self) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn set(&self, _: &'static str, _: Attr<'_>) {}

    #[inline(always)]
    pub(crate) fn set_str_array(&self, _: &'static str, _: impl IntoIterator<Item = &'static str>) {
    }

    #[inline(always)]
    pub(crate) fn add_event(&self, _: &'static str, _: &[(&'static str, Attr<'_>)]) {}

    #[inline(always)]
    pub(crate) fn record_error(&self, _: &str, _: &(impl std::fmt::Display + ?Sized)) {}

    #[inline(always)]
    pub(crate) fn record_panic(&self, _: &(dyn std::any::Any + Send)) {}

    #[inline(always)]
    pub(crate) fn set_error(&self, _: &(impl std::fmt::Display + ?Sized)) {}

    #[inline(always)]
    pub(crate) fn inject<M>(&self, _: &mut M) {}

    #[inline(always)]
    pub(crate) fn inject_each<'m, M: 'm>(&self, _: impl Iterator<Item = &'m mut M>) {}

    #[inline(always)]
    pub(crate) fn run<F: Future>(&self, work: F) -> F {
        work
    }

    #[inline(always)]
    pub(crate) fn in_scope<R>(&self, work: impl FnOnce() -> R) -> R {
        work()
    }
}

#[inline(always)]
pub(crate) fn enabled() -> bool {
    false
}

#[inline(always)]
pub(crate) async fn in_stored_context<M: ?Sized, F: Future>(_: &M, work: F) -> F::Output {
    work.await
}

/// Stands for a duration measurement.
pub(crate) struct Stopwatch;

impl Stopwatch {
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::ZERO
    }
}

pub(crate) mod metrics {
    //! The declarations of `otel/metrics.rs`, holding nothing, and their records, doing
    //! nothing.

    use std::time::Duration;

    use crate::telemetry::values::Attr;

    /// Stands for a counter.
    pub(crate) struct Counter;

    impl Counter {
        pub(crate) const fn new(_: &'static str, _: &'static str, _: &'static str) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn add<const N: usize>(&'static self, _: u64, _: [(&'static str, Attr<'_>); N]) {
        }
    }

    /// Stands for a histogram.
    pub(crate) struct Histogram;

    impl Histogram {
        pub(crate) const fn new(
            _: &'static str,
            _: &'static str,
            _: &'static str,
            _: &'static [f64],
        ) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn record<const N: usize>(
            &'static self,
            _: u64,
            _: [(&'static str, Attr<'_>); N],
        ) {
        }
    }

    /// Stands for a histogram of durations.
    pub(crate) struct DurationHistogram;

    impl DurationHistogram {
        pub(crate) const fn new(_: &'static str, _: &'static str, _: &'static [f64]) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn record<const N: usize>(
            &'static self,
            _: Duration,
            _: [(&'static str, Attr<'_>); N],
        ) {
        }
    }

    /// Stands for a gauge.
    pub(crate) struct Gauge;

    impl Gauge {
        pub(crate) const fn new(_: &'static str, _: &'static str, _: &'static str) -> Self {
            Self
        }
    }

    /// Stands for a gauge of durations.
    pub(crate) struct DurationGauge;

    impl DurationGauge {
        pub(crate) const fn new(_: &'static str, _: &'static str) -> Self {
            Self
        }
    }

    #[inline(always)]
    pub(crate) fn record<const N: usize>(
        _: [(&'static str, Attr<'_>); N],
        _: impl FnOnce(&Recorder<N>),
    ) {
    }

    /// Stands for the instruments and attributes of several measurements.
    pub(crate) struct Recorder<const N: usize>;

    impl<const N: usize> Recorder<N> {
        #[inline(always)]
        pub(crate) fn add(&self, _: &'static Counter, _: u64) {}

        #[inline(always)]
        pub(crate) fn add_with_first(&self, _: &'static Counter, _: u64, _: usize) {}

        #[inline(always)]
        pub(crate) fn duration(&self, _: &'static DurationHistogram, _: Duration) {}

        #[inline(always)]
        pub(crate) fn gauge(&self, _: &'static Gauge, _: u64) {}

        #[inline(always)]
        pub(crate) fn duration_gauge(&self, _: &'static DurationGauge, _: Duration) {}
    }
}

pub(crate) mod log {
    //! The log macros, writing nothing. Their arguments are still type-checked and
    //! borrowed, so a value only logged is not reported unused.

    /// Borrows every value of a `tracing`-style argument list.
    macro_rules! consume {
        () => {};
        ($message:literal $(, $arg:expr)* $(,)?) => {{ let _ = format_args!($message $(, $arg)*); }};
        ($key:ident = % $value:expr $(, $($rest:tt)*)?) => {{ let _ = &$value; $($crate::telemetry::otel::log::consume!($($rest)*);)? }};
        ($key:ident = ? $value:expr $(, $($rest:tt)*)?) => {{ let _ = &$value; $($crate::telemetry::otel::log::consume!($($rest)*);)? }};
        ($key:ident = $value:expr $(, $($rest:tt)*)?) => {{ let _ = &$value; $($crate::telemetry::otel::log::consume!($($rest)*);)? }};
        ($key:ident $(, $($rest:tt)*)?) => {{ let _ = &$key; $($crate::telemetry::otel::log::consume!($($rest)*);)? }};
    }

    macro_rules! log_info {
        ($($arg:tt)+) => { $crate::telemetry::otel::log::consume!($($arg)+) };
    }

    macro_rules! log_warn {
        ($($arg:tt)+) => { $crate::telemetry::otel::log::consume!($($arg)+) };
    }

    macro_rules! log_error {
        ($($arg:tt)+) => { $crate::telemetry::otel::log::consume!($($arg)+) };
    }

    #[cfg(any(feature = "kafka", feature = "nats"))]
    macro_rules! log_debug {
        ($($arg:tt)+) => { $crate::telemetry::otel::log::consume!($($arg)+) };
    }

    #[cfg(any(feature = "kafka", feature = "nats"))]
    pub(crate) use log_debug;
    pub(crate) use {consume, log_error, log_info, log_warn};
}
