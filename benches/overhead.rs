//! The price of `#[traced]`, measured in one run so the ratios compare like with like:
//!
//! - `a_switched_off`: a `#[traced(enabled = false)]` function, and a `#[traced]` one with
//!   the process switch off, against the same plain function (goal: <= 1 ns extra);
//! - `b_no_subscriber`: `#[traced(fields(a = x, b = y))]` against a hand-written
//!   `info_span!("f", a = x, b = y).entered()`, no subscriber installed (goal: <= 1.05x);
//! - `c_otel_pipeline`: the pipeline of `telemetry::init()` (`telemetry::layer()` on a
//!   registry, a batch span processor over an exporter that does nothing): `#[traced]`
//!   on a function and on a method, against hand-written `tracing` spans (default layer
//!   settings, and the same settings as `telemetry::layer()`) and a span started directly
//!   on the SDK tracer, two attributes each (goal: `#[traced]` <= 1.3x the direct SDK span).
//!   The processor is flushed, untimed, every [`CHUNK`] spans, so none is dropped;
//! - `d_switched_off_under_subscriber`: group a again with that pipeline installed.
//!
//! `cargo bench --bench overhead`
//!
//! Groups a and b run before any subscriber exists in the process (a scoped subscriber
//! would otherwise leave its interest cached in the callsites); group c installs each
//! subscriber with `with_default`, for its own function only.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eventsource_runtime::telemetry;
use eventsource_runtime::traced;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt as _;

// ---- the functions measured ---------------------------------------------------------------

#[inline(never)]
fn plain(x: u64) -> u64 {
    black_box(x).wrapping_add(1)
}

#[traced(enabled = false)]
#[inline(never)]
fn traced_enabled_false(x: u64) -> u64 {
    black_box(x).wrapping_add(1)
}

/// Measured with `telemetry::set_enabled(false)`.
#[traced]
#[inline(never)]
fn traced_process_switch(x: u64) -> u64 {
    black_box(x).wrapping_add(1)
}

#[traced(fields(a = x, b = y))]
#[inline(never)]
fn traced_fields(x: i64, y: &str) -> usize {
    black_box(y).len().wrapping_add(black_box(x) as usize)
}

/// What `#[traced(fields(a = x, b = y))]` would be written as by hand.
#[inline(never)]
fn hand_written_fields(x: i64, y: &str) -> usize {
    let _span = tracing::info_span!("f", a = x, b = y).entered();
    black_box(y).len().wrapping_add(black_box(x) as usize)
}

/// The same span straight on the OpenTelemetry SDK: start, two attributes, end.
#[inline(never)]
fn direct_sdk(tracer: &SdkTracer, x: i64, y: &str) -> usize {
    let mut span = tracer.start("f");
    span.set_attribute(KeyValue::new("a", x));
    span.set_attribute(KeyValue::new("b", y.to_owned()));
    let ret = black_box(y).len().wrapping_add(black_box(x) as usize);
    span.end();
    ret
}

struct Service;

impl Service {
    /// A method: its span is named `Service.op` (through `otel.name`).
    #[traced(fields(a = x, b = y))]
    #[inline(never)]
    fn op(&self, x: i64, y: &str) -> usize {
        black_box(y).len().wrapping_add(black_box(x) as usize)
    }
}

// ---- the pipeline -------------------------------------------------------------------------

/// An exporter that drops every batch at once (and counts the spans, off the hot path).
#[derive(Debug, Clone, Default)]
struct NoopExporter {
    exported: Arc<AtomicU64>,
}

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.exported
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The tracer provider of `telemetry::init()` with OTLP export, minus the network. Its
/// queue (default 2048) holds a whole [`CHUNK`], so no span is dropped when the export
/// thread is scheduled late.
fn provider(exporter: &NoopExporter) -> SdkTracerProvider {
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(2 * CHUNK as usize)
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter.clone())
                .with_batch_config(config)
                .build(),
        )
        .build()
}

/// `telemetry::layer()` on a registry: the subscriber of `telemetry::init()`, without its
/// log lines and filters.
fn pipeline(
    tracer: &SdkTracer,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a> {
    tracing_subscriber::registry().with(telemetry::layer(tracer.clone()))
}

// ---- the groups ---------------------------------------------------------------------------

fn a_switched_off(c: &mut Criterion) {
    let mut group = c.benchmark_group("a_switched_off");
    group.bench_function("plain", |b| b.iter(|| plain(black_box(7))));
    group.bench_function("traced_enabled_false", |b| {
        b.iter(|| traced_enabled_false(black_box(7)));
    });
    telemetry::set_enabled(false);
    group.bench_function("traced_process_switch_off", |b| {
        b.iter(|| traced_process_switch(black_box(7)));
    });
    telemetry::set_enabled(true);
    group.finish();
}

fn b_no_subscriber(c: &mut Criterion) {
    assert!(
        !tracing::dispatcher::has_been_set(),
        "group b needs a process without a subscriber"
    );
    let mut group = c.benchmark_group("b_no_subscriber");
    group.bench_function("traced_fields", |b| {
        b.iter(|| traced_fields(black_box(42), black_box("order-1")));
    });
    group.bench_function("hand_written_span", |b| {
        b.iter(|| hand_written_fields(black_box(42), black_box("order-1")));
    });
    group.finish();
}

/// Spans timed between two flushes of the batch processor (its queue holds more).
const CHUNK: u64 = 1 << 15;

/// Times `iters` spans made by `span`, flushing the batch processor (untimed) after every
/// [`CHUNK`]: the queue never fills, so no span is dropped and each pays for the whole
/// pipeline (the export thread runs beside the measured one, as it does in production).
fn spans(
    provider: &SdkTracerProvider,
    created: &mut u64,
    mut span: impl FnMut() -> usize,
) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let chunk = left.min(CHUNK);
            let start = Instant::now();
            for _ in 0..chunk {
                black_box(span());
            }
            elapsed += start.elapsed();
            provider.force_flush().expect("flush");
            left -= chunk;
        }
        *created += iters;
        elapsed
    }
}

fn c_otel_pipeline(c: &mut Criterion) {
    let exporter = NoopExporter::default();
    let provider = provider(&exporter);
    let tracer = provider.tracer("overhead");
    let mut created = 0_u64;
    let mut group = c.benchmark_group("c_otel_pipeline");

    // `telemetry::layer()`: the settings `telemetry::init()` uses.
    tracing::subscriber::with_default(pipeline(&tracer), || {
        group.bench_function("traced_fn", |b| {
            b.iter_custom(spans(&provider, &mut created, || {
                traced_fields(black_box(42), black_box("order-1"))
            }));
        });
        group.bench_function("traced_method", |b| {
            b.iter_custom(spans(&provider, &mut created, || {
                Service.op(black_box(42), black_box("order-1"))
            }));
        });
    });

    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("hand_written_default_layer", |b| {
            b.iter_custom(spans(&provider, &mut created, || {
                hand_written_fields(black_box(42), black_box("order-1"))
            }));
        });
    });

    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false),
    );
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("hand_written_tuned_layer", |b| {
            b.iter_custom(spans(&provider, &mut created, || {
                hand_written_fields(black_box(42), black_box("order-1"))
            }));
        });
    });

    group.bench_function("direct_sdk_span", |b| {
        b.iter_custom(spans(&provider, &mut created, || {
            direct_sdk(&tracer, black_box(42), black_box("order-1"))
        }));
    });
    group.finish();

    let exported = exporter.exported.load(Ordering::Relaxed);
    eprintln!(
        "c_otel_pipeline: {created} spans created, {exported} exported, {} dropped",
        created.saturating_sub(exported)
    );
    provider.shutdown().expect("shutdown");
}

/// Group a again, with the pipeline installed (a subscriber exists, the span is off).
fn d_switched_off_under_subscriber(c: &mut Criterion) {
    let exporter = NoopExporter::default();
    let provider = provider(&exporter);
    let tracer = provider.tracer("overhead");
    let mut group = c.benchmark_group("d_switched_off_under_subscriber");
    tracing::subscriber::with_default(pipeline(&tracer), || {
        group.bench_function("plain", |b| b.iter(|| plain(black_box(7))));
        group.bench_function("traced_enabled_false", |b| {
            b.iter(|| traced_enabled_false(black_box(7)));
        });
        telemetry::set_enabled(false);
        group.bench_function("traced_process_switch_off", |b| {
            b.iter(|| traced_process_switch(black_box(7)));
        });
        telemetry::set_enabled(true);
    });
    group.finish();
    assert_eq!(exporter.exported.load(Ordering::Relaxed), 0);
    provider.shutdown().expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = a_switched_off, b_no_subscriber, c_otel_pipeline, d_switched_off_under_subscriber
}
criterion_main!(benches);
