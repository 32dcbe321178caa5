//! The order workload through `CommandService` over the in-memory store, in one run, so the
//! ratios compare like with like:
//!
//! - `w1_orders`: independent orders, each `PlaceOrder` then `ShipOrder` (one iteration is
//!   one order, two commands; the throughput is given per command, so criterion's
//!   `thrpt` line reads commands per second and `time` / 2 is the time per command); the
//!   repository as `CommandService::new` makes it, so `ShipOrder` starts from the cached
//!   state;
//! - `w2_hot_aggregate`: one aggregate already holding [`W2_EVENTS`] events (stored before
//!   the timing), one more command per iteration, with the repository's cache off
//!   (`with_cache(0)`): every command replays the whole stream, which grows by one per
//!   iteration (by about a tenth over a run). This measures replay; with the cache, a
//!   command replays nothing (see `../shared/peerbench`'s W2).
//!
//! Each workload three ways:
//! - `tracing_off`: `telemetry::set_enabled(false)`;
//! - `tracing_on`: eventsource's layer (`telemetry::layer`) on a registry, a simple span
//!   processor and an exporter that drops the spans (and counts them), and (W1) the
//!   metrics recorded into an SDK meter provider: what telemetry costs the command path,
//!   without the network;
//! - `hand_written`: the same rules without the framework: a `HashMap` of JSON-encoded event
//!   vectors behind a lock; each command decodes the stream, folds it into the state,
//!   decides, encodes the new events, checks the expected version and appends;
//! - `hand_written_traced` (W1 only): `hand_written` with the five spans a traced W1 command
//!   makes written by hand on the SDK, on the same provider as `tracing_on`: the same names,
//!   kinds, parents, attributes (set at the start where known, as a careful hand would) and
//!   span events, and the append span's W3C context injected into a map stored beside each
//!   event; and the contract's three command metrics (`cqrs.command.duration`,
//!   `cqrs.command.total`, `cqrs.events.produced`) on the same meter provider, as the traced
//!   variant records them. `hand_written_traced - hand_written` is what the SDK itself costs for those
//!   spans; `tracing_on - tracing_off` is what eventsource's tracing costs; the difference
//!   is eventsource's own part.
//!
//! Goals: tracing on adds at most 5 µs per W1 command (issue 8), at most 3 µs (issue 10).
//!
//! `cargo bench --bench command` (about two minutes here).

#[path = "command/baseline.rs"]
mod baseline;
mod common;
#[path = "../examples/domain/order.rs"]
mod domain;
#[path = "command/notebook.rs"]
mod notebook;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use baseline::{Baseline, CommandMetrics, TracedBaseline};
use common::{DroppingExporter, traced_dispatch};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Order, OrderError, ShipOrder, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use notebook::{EmptyNote, NoteAdded, Notebook, note};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tracing::Dispatch;

/// Events already in the hot aggregate's stream when W2 starts timing.
const W2_EVENTS: usize = 10_000;

// ---- the tracing pipeline ----------------------------------------------------------------

// ---- the variants ----------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Variant {
    TracingOff,
    TracingOn,
    HandWritten,
    HandWrittenTraced,
}

impl Variant {
    const ALL: [Self; 3] = [Self::TracingOff, Self::TracingOn, Self::HandWritten];
    const W1: [Self; 4] = [
        Self::TracingOff,
        Self::TracingOn,
        Self::HandWritten,
        Self::HandWrittenTraced,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::TracingOff => "tracing_off",
            Self::TracingOn => "tracing_on",
            Self::HandWritten => "hand_written",
            Self::HandWrittenTraced => "hand_written_traced",
        }
    }
}

/// Runs `iters` iterations of `work` on `runtime`, under the variant's telemetry, and
/// returns the time they took.
fn timed<F, Fut>(runtime: &Runtime, dispatch: Option<&Dispatch>, iters: u64, work: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let run = || {
        runtime.block_on(async {
            let started = Instant::now();
            for i in 0..iters {
                work(i).await;
            }
            started.elapsed()
        })
    };
    match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, run),
        None => run(),
    }
}

/// The dispatcher and process switch of a variant.
fn telemetry_for(variant: Variant, traced: &Dispatch) -> Option<&Dispatch> {
    eventsource_runtime::telemetry::set_enabled(matches!(variant, Variant::TracingOn));
    matches!(variant, Variant::TracingOn).then_some(traced)
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
}

// ---- W1 ----------------------------------------------------------------------------------

fn w1_orders(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // A traced command's metrics go to an SDK meter provider (read once a minute): timed too.
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let reader = PeriodicReader::builder(InMemoryMetricExporter::default()).build();
    let meters = SdkMeterProvider::builder().with_reader(reader).build();
    opentelemetry::global::set_meter_provider(meters);
    let exporter = DroppingExporter::default();
    let (traced, provider) = traced_dispatch(&exporter);
    let next = AtomicU64::new(0);
    let order_id = || format!("order-{}", next.fetch_add(1, Ordering::Relaxed));

    let mut group = c.benchmark_group("w1_orders");
    configure(&mut group);
    group.throughput(Throughput::Elements(2));
    for variant in Variant::W1 {
        group.bench_function(variant.name(), |b| {
            let dispatch = telemetry_for(variant, &traced);
            match variant {
                Variant::TracingOff | Variant::TracingOn => {
                    let service = CommandService::<Order>::new(InMemoryEventStore::new());
                    b.iter_custom(|iters| {
                        timed(&runtime, dispatch, iters, |_| {
                            let id = order_id();
                            let service = &service;
                            async move {
                                let placed = service.execute(sample_order(&id, "c-1")).await;
                                let shipped = service
                                    .execute(ShipOrder {
                                        order_id: id,
                                        carrier: "dhl".into(),
                                    })
                                    .await;
                                black_box((placed.is_ok(), shipped.is_ok()));
                            }
                        })
                    });
                }
                Variant::HandWritten => {
                    let baseline = Baseline::default();
                    b.iter_custom(|iters| {
                        timed(&runtime, None, iters, |_| {
                            let id = order_id();
                            let baseline = &baseline;
                            async move {
                                let place = sample_order(&id, "c-1");
                                let placed =
                                    baseline.execute::<Order, OrderError>(&id, |o| o.place(place));
                                let ship = ShipOrder {
                                    order_id: id.clone(),
                                    carrier: "dhl".into(),
                                };
                                let shipped =
                                    baseline.execute::<Order, OrderError>(&id, |o| o.ship(ship));
                                black_box((placed.is_ok(), shipped.is_ok()));
                            }
                        })
                    });
                }
                Variant::HandWrittenTraced => {
                    let baseline = TracedBaseline {
                        baseline: Baseline::default(),
                        tracer: provider.tracer("bench"),
                        propagator: TraceContextPropagator::new(),
                        metrics: CommandMetrics::new(),
                    };
                    b.iter_custom(|iters| {
                        timed(&runtime, None, iters, |_| {
                            let id = order_id();
                            let baseline = &baseline;
                            async move {
                                let place = sample_order(&id, "c-1");
                                let placed = baseline.execute::<Order, OrderError>(
                                    ("command.PlaceOrder", "PlaceOrder"),
                                    &id,
                                    |o| o.place(place),
                                );
                                let ship = ShipOrder {
                                    order_id: id.clone(),
                                    carrier: "dhl".into(),
                                };
                                let shipped = baseline.execute::<Order, OrderError>(
                                    ("command.ShipOrder", "ShipOrder"),
                                    &id,
                                    |o| o.ship(ship),
                                );
                                black_box((placed.is_ok(), shipped.is_ok()));
                            }
                        })
                    });
                    assert!(
                        baseline.events_with_traceparent() > 0,
                        "the hand-written spans' context is stored with the events"
                    );
                }
            }
        });
    }
    group.finish();
    eventsource_runtime::telemetry::set_enabled(true);
    assert!(
        exporter.exported.load(Ordering::Relaxed) > 0,
        "the traced variant exported spans"
    );
}

// ---- W2 ----------------------------------------------------------------------------------

fn w2_hot_aggregate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);

    let mut group = c.benchmark_group("w2_hot_aggregate");
    configure(&mut group);
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for variant in Variant::ALL {
        // Filled with the process switch off: the fill is not what is measured.
        eventsource_runtime::telemetry::set_enabled(false);
        match variant {
            Variant::TracingOff | Variant::TracingOn => {
                let service = CommandService::with_repository(
                    Repository::<Notebook>::new(InMemoryEventStore::new()).with_cache(0),
                    eventsource_runtime::projection::ProjectionRegistry::new(),
                );
                runtime.block_on(async {
                    for n in 0..W2_EVENTS as u64 {
                        service.execute(note(n)).await.expect("a note");
                    }
                });
                group.bench_function(variant.name(), |b| {
                    let dispatch = telemetry_for(variant, &traced);
                    b.iter_custom(|iters| {
                        timed(&runtime, dispatch, iters, |n| {
                            let service = &service;
                            async move {
                                black_box(service.execute(note(n)).await.is_ok());
                            }
                        })
                    });
                });
            }
            // Not in `Variant::ALL`, which W2 runs.
            Variant::HandWrittenTraced => continue,
            Variant::HandWritten => {
                let baseline = Baseline::default();
                for n in 0..W2_EVENTS as u64 {
                    let text = note(n).text;
                    let added = baseline.execute::<Notebook, EmptyNote>("hot", |_| {
                        Ok(vec![NoteAdded { text }.into()])
                    });
                    added.expect("a note");
                }
                group.bench_function(variant.name(), |b| {
                    b.iter_custom(|iters| {
                        timed(&runtime, None, iters, |n| {
                            let baseline = &baseline;
                            async move {
                                let cmd = note(n);
                                let added = baseline
                                    .execute::<Notebook, EmptyNote>("hot", |notebook| {
                                        notebook.handle(cmd)
                                    });
                                black_box(added.is_ok());
                            }
                        })
                    });
                });
            }
        }
    }
    group.finish();
    eventsource_runtime::telemetry::set_enabled(true);
}

criterion_group!(benches, w1_orders, w2_hot_aggregate);
criterion_main!(benches);
