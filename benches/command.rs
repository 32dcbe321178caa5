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

mod common;
#[path = "../examples/domain/order.rs"]
mod domain;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{DroppingExporter, traced_dispatch};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Order, OrderError, ShipOrder, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
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

// ---- W2's aggregate: one notebook, one note per command ----------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteAdded {
    pub text: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Notebook", events(NoteAdded))]
pub struct Notebook {
    notes: usize,
}

impl Apply<NoteAdded> for Notebook {
    fn apply(&mut self, _: &NoteAdded) {
        self.notes += 1;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a note cannot be empty")]
pub struct EmptyNote;

pub struct AddNote {
    pub notebook_id: String,
    pub text: String,
}

impl Command for AddNote {
    const TYPE: &'static str = "AddNote";
    fn aggregate_id(&self) -> String {
        self.notebook_id.clone()
    }
}

impl Handle<AddNote> for Notebook {
    type Error = EmptyNote;
    fn handle(&self, cmd: AddNote) -> Result<Vec<NotebookEvent>, EmptyNote> {
        if cmd.text.is_empty() {
            return Err(EmptyNote);
        }
        Ok(vec![NoteAdded { text: cmd.text }.into()])
    }
}

fn note(n: u64) -> AddNote {
    AddNote {
        notebook_id: "hot".into(),
        text: format!("note {n}"),
    }
}

// ---- the hand-written baseline -----------------------------------------------------------

/// Streams of JSON-encoded events, keyed by aggregate id.
#[derive(Default)]
struct Baseline {
    streams: Mutex<HashMap<String, Vec<Stored>>>,
}

/// A stored event: its JSON, and the W3C context of the span that appended it (traced only).
struct Stored {
    json: String,
    trace_context: Option<HashMap<String, String>>,
}

impl Stored {
    fn new(event: &impl Serialize, trace_context: Option<HashMap<String, String>>) -> Self {
        Self {
            json: serde_json::to_string(event).expect("serializable"),
            trace_context,
        }
    }
}

impl Baseline {
    /// Loads the stream, folds it into `A`'s state, decides, and appends if the stream is
    /// still at the version it was read at.
    fn execute<A, E>(
        &self,
        id: &str,
        decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<usize, E>
    where
        A: Aggregate,
        A::Event: Serialize + for<'de> Deserialize<'de>,
    {
        let (mut state, version) = self.load::<A>(id);
        let events = decide(&state)?;
        let encoded: Vec<Stored> = events
            .iter()
            .map(|event| Stored::new(event, None))
            .collect();
        for event in &events {
            state.apply_event(event);
        }
        Ok(self.append(id, version, encoded))
    }

    /// The stream's events folded into `A`'s state, and its version.
    fn load<A>(&self, id: &str) -> (A, usize)
    where
        A: Aggregate,
        A::Event: for<'de> Deserialize<'de>,
    {
        let streams = self.lock();
        let mut state = A::default();
        let stored = streams.get(id).map_or(&[][..], Vec::as_slice);
        for stored in stored {
            let event: A::Event = serde_json::from_str(&stored.json).expect("stored by us");
            state.apply_event(&event);
        }
        (state, stored.len())
    }

    /// Appends `encoded` to a stream read at `version`; the new version.
    fn append(&self, id: &str, version: usize, encoded: Vec<Stored>) -> usize {
        let mut streams = self.lock();
        let stream = streams.entry(id.to_owned()).or_default();
        assert_eq!(stream.len(), version, "a single writer");
        stream.extend(encoded);
        stream.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Stored>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`Baseline::execute`] with the five spans of a traced W1 command written by hand on the
/// SDK (see the module's `hand_written_traced`).
struct TracedBaseline {
    baseline: Baseline,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    metrics: CommandMetrics,
}

/// The contract's three command metrics, recorded by hand on the same meter provider as
/// eventsource's: what a careful hand writing the same telemetry records too.
struct CommandMetrics {
    duration: opentelemetry::metrics::Histogram<f64>,
    total: opentelemetry::metrics::Counter<u64>,
    produced: opentelemetry::metrics::Counter<u64>,
}

impl CommandMetrics {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("bench");
        Self {
            duration: meter
                .f64_histogram(attr::METRIC_COMMAND_DURATION)
                .with_unit("s")
                .build(),
            total: meter.u64_counter(attr::METRIC_COMMAND_TOTAL).build(),
            produced: meter.u64_counter(attr::METRIC_EVENTS_PRODUCED).build(),
        }
    }
}

/// A correlation id's text, as a stamped command carries one (eventsource stamps it with
/// tracing off too, so only the attribute's copy is tracing's part).
const CORRELATION_ID: &str = "0193a5c4-7e1f-7d2a-9b3c-4d5e6f708192";

impl TracedBaseline {
    /// How many stored events carry a W3C `traceparent`.
    fn events_with_traceparent(&self) -> usize {
        let streams = self.baseline.lock();
        let events = streams.values().flatten();
        events
            .filter(|stored| {
                let context = stored.trace_context.as_ref();
                context.is_some_and(|context| context.contains_key("traceparent"))
            })
            .count()
    }

    fn execute<A, E>(
        &self,
        (span_name, command_type): (&'static str, &'static str),
        id: &str,
        decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<usize, E>
    where
        A: Aggregate,
        A::Event: Serialize + for<'de> Deserialize<'de>,
    {
        let aggregate_type: &'static str = A::TYPE;
        let id_value = StringValue::from(std::sync::Arc::<str>::from(id));
        let stream = || {
            [
                KeyValue::new(attr::AGGREGATE_ID, Value::String(id_value.clone())),
                KeyValue::new(attr::AGGREGATE_TYPE, aggregate_type),
            ]
        };
        let span = |name: &'static str, kind, mut attributes: Vec<KeyValue>, parent: &Context| {
            attributes.extend(stream());
            let span = self
                .tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, parent);
            parent.with_span(span)
        };
        let started = Instant::now();
        let command = span(
            span_name,
            SpanKind::Internal,
            vec![
                KeyValue::new(attr::COMMAND_TYPE, command_type),
                KeyValue::new(attr::CQRS_SIDE, attr::SIDE_WRITE),
                KeyValue::new(attr::CORRELATION_ID, CORRELATION_ID.to_owned()),
            ],
            &Context::new(),
        );

        // Load: the repository's span, the store's inside it.
        let load = span(
            attr::SPAN_REPOSITORY_LOAD,
            SpanKind::Internal,
            Vec::new(),
            &command,
        );
        let (mut state, version) = {
            let store_load = span(
                attr::SPAN_STORE_LOAD,
                SpanKind::Client,
                vec![
                    KeyValue::new(attr::FROM_VERSION, 1_i64),
                    KeyValue::new(attr::DB_SYSTEM_NAME, "in_memory"),
                    KeyValue::new(attr::DB_OPERATION_NAME, "load"),
                ],
                &load,
            );
            let (state, version) = self.baseline.load::<A>(id);
            let span = store_load.span();
            span.set_attribute(KeyValue::new(attr::EVENTS_LOADED, version as i64));
            span.end();
            (state, version)
        };
        let span_of_load = load.span();
        span_of_load.set_attribute(KeyValue::new(attr::EVENTS_REPLAYED, version as i64));
        span_of_load.set_attribute(KeyValue::new(attr::VERSION, version as i64));
        span_of_load.set_attribute(KeyValue::new(attr::SNAPSHOT_USED, false));
        span_of_load.end();

        let events = decide(&state)?;
        let types: Vec<&'static str> = events.iter().map(A::Event::event_type).collect();
        let command_span = command.span();
        command_span.set_attribute(KeyValue::new(attr::EVENT_COUNT, events.len() as i64));
        command_span.set_attribute(KeyValue::new(
            attr::EVENT_TYPES,
            Value::Array(Array::String(types.iter().map(|&t| t.into()).collect())),
        ));
        for &event_type in &types {
            command_span.add_event(
                attr::SPAN_EVENT_DOMAIN_EVENT_PRODUCED,
                vec![KeyValue::new(attr::EVENT_TYPE, event_type)],
            );
        }

        // Save: the repository's span, the store's inside it.
        let counts = || {
            vec![
                KeyValue::new(attr::EXPECTED_VERSION, version as i64),
                KeyValue::new(attr::EVENT_COUNT, events.len() as i64),
            ]
        };
        let save = span(
            attr::SPAN_REPOSITORY_SAVE,
            SpanKind::Internal,
            counts(),
            &command,
        );
        let mut append_attributes = counts();
        append_attributes.extend([
            KeyValue::new(attr::DB_SYSTEM_NAME, "in_memory"),
            KeyValue::new(attr::DB_OPERATION_NAME, "append"),
        ]);
        let append = span(
            attr::SPAN_STORE_APPEND,
            SpanKind::Client,
            append_attributes,
            &save,
        );
        let encoded: Vec<Stored> = events
            .iter()
            .map(|event| {
                let mut trace_context = HashMap::new();
                self.propagator.inject_context(&append, &mut trace_context);
                Stored::new(event, Some(trace_context))
            })
            .collect();
        for event in &events {
            state.apply_event(event);
        }
        let new_version = self.baseline.append(id, version, encoded);
        let append_span = append.span();
        for (sequence, &event_type) in (version + 1..).zip(&types) {
            append_span.add_event(
                attr::SPAN_EVENT_EVENT_PERSISTED,
                vec![
                    KeyValue::new(attr::EVENT_TYPE, event_type),
                    KeyValue::new(attr::EVENT_SEQUENCE, sequence as i64),
                ],
            );
        }
        append_span.set_attribute(KeyValue::new(attr::VERSION, new_version as i64));
        append_span.end();
        let save_span = save.span();
        save_span.set_attribute(KeyValue::new(attr::VERSION, new_version as i64));
        save_span.end();
        let outcome = [
            KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type),
            KeyValue::new(attr::METRIC_ATTR_COMMAND_STATUS, attr::STATUS_SUCCESS),
        ];
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64(), &outcome);
        self.metrics.total.add(1, &outcome);
        self.metrics.produced.add(
            types.len() as u64,
            &[KeyValue::new(attr::METRIC_ATTR_COMMAND_TYPE, command_type)],
        );
        command_span.end();
        Ok(new_version)
    }
}

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
