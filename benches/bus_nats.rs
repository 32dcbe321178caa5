//! The NATS JetStream bus against a real server, in one run so the ratios compare like with
//! like (issue 27):
//!
//! - `nats_relay_throughput`: [`EVENTS`] stored events published by a [`Relay`] from a fresh
//!   checkpoint (tracing off, and on), beside async-nats publishing the same messages
//!   directly (`raw_in_flight`): the same body and headers (`eventsource-*`,
//!   `Nats-Msg-Id`), the same stream, every JetStream acknowledgement awaited, a window of
//!   the relay's batch size in flight. Each iteration publishes events it never published
//!   before (a new store), so that the duplicate window drops none; the stream is purged
//!   between iterations (not timed);
//! - `nats_consumer_throughput`: a [`ConsumerGroup`](eventsource_runtime::nats::ConsumerGroup)
//!   of its own per iteration (a new durable consumer, so it reads the [`EVENTS`] messages
//!   published once at the start) running until its handler saw them all (tracing off, and
//!   on), beside an async-nats pull consumer of its own reading the same messages and
//!   double-acking each (`raw_pull_double_ack`). The time runs from the start (consumers
//!   declared, pulls opened) to the last message handled; the group's graceful stop (up to
//!   two seconds) is not timed. Throughput reads events per second.
//!
//! Goal (issue 27): the relay at >= 0.5x raw publishing; the group at >= 0.5x the raw pull
//! consumer.
//!
//! `EVENTSOURCE_NATS_URL=nats://127.0.0.1:4222 cargo bench --bench bus_nats --features nats`
//! (about two minutes here). Without `EVENTSOURCE_NATS_URL` it says so and measures
//! nothing. Each run uses streams of its own and deletes them at the end.

mod common;
#[path = "../examples/domain/order.rs"]
mod domain;

use eventsource_runtime::nats::async_nats;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, Context};
use common::{DroppingExporter, traced_dispatch};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Order, sample_order};
use eventsource_runtime::bus::wire::{self, DeliveryState};
use eventsource_runtime::bus::{BusMessage, EventBus, HandlerError};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use futures_util::StreamExt as _;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tracing::Dispatch;

/// Events published (and consumed) per iteration.
const EVENTS: usize = 2_000;

/// The relay's batch size: the window the raw publisher keeps in flight too.
const BATCH: usize = 256;

// ---- the server ----------------------------------------------------------------------------

/// This run's streams on the server at `url`.
struct Server {
    url: String,
    /// The relay's (and the raw publisher's) stream and subject prefix.
    relay_stream: String,
    relay_prefix: String,
    /// The consumers' stream and subject prefix.
    consume_stream: String,
    consume_prefix: String,
}

impl Server {
    fn from_env() -> Option<Self> {
        let url = std::env::var("EVENTSOURCE_NATS_URL").ok()?;
        let run = uuid::Uuid::now_v7().simple();
        Some(Self {
            url,
            relay_stream: format!("ES_BENCH_RELAY_{run}"),
            relay_prefix: format!("es-bench-relay-{run}"),
            consume_stream: format!("ES_BENCH_CONSUME_{run}"),
            consume_prefix: format!("es-bench-consume-{run}"),
        })
    }

    async fn jetstream(&self) -> Context {
        let client = async_nats::connect(&self.url).await.expect("the server");
        jetstream::new(client)
    }

    /// Deletes the run's streams (their consumers go with them).
    async fn clean(&self) {
        let js = self.jetstream().await;
        for stream in [&self.relay_stream, &self.consume_stream] {
            for suffix in ["", "_RETRY", "_DEAD"] {
                let _ = js.delete_stream(format!("{stream}{suffix}")).await;
            }
        }
    }
}

/// [`EVENTS`] new order events, stored in a new store.
async fn stored_events() -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    for i in 0..EVENTS {
        let order = sample_order(&format!("o-{i}"), "ada");
        orders.execute(order).await.expect("an order");
    }
    store
}

/// What the bus sends for `event` on a first publish: subject, headers (as the bus writes
/// them with tracing off, `Nats-Msg-Id` = the event id) and body, made ahead of time for the
/// raw publisher.
fn raw_message(prefix: &str, event: &EventEnvelope) -> (String, HeaderMap, Vec<u8>) {
    let subject = format!("{prefix}.{}.{}", event.aggregate_type(), event.event_type);
    let message = BusMessage::new(subject.as_str(), event.clone());
    let mut headers = HeaderMap::new();
    for (key, value) in wire::text_headers(&message, &DeliveryState::default()) {
        headers.insert(key, value.as_str());
    }
    headers.insert(NATS_MESSAGE_ID, event.event_id.to_string().as_str());
    let body = wire::encode(event).expect("JSON");
    (subject, headers, body)
}

// ---- running -------------------------------------------------------------------------------

/// Runs `iters` iterations on `runtime` (under `dispatch` if any): `prepare` untimed, then
/// `work` with what it prepared, timed; returns the time the work took.
fn timed<P, PFut, W, WFut, T>(
    runtime: &Runtime,
    dispatch: Option<&Dispatch>,
    iters: u64,
    prepare: P,
    work: W,
) -> Duration
where
    P: Fn() -> PFut,
    PFut: Future<Output = T>,
    W: Fn(T) -> WFut,
    WFut: Future<Output = ()>,
{
    let run = || {
        runtime.block_on(async {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let prepared = prepare().await;
                let started = Instant::now();
                work(prepared).await;
                took += started.elapsed();
            }
            took
        })
    };
    match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, run),
        None => run(),
    }
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
}

// ---- relay throughput -----------------------------------------------------------------------

fn relay_throughput(c: &mut Criterion, runtime: &Runtime, server: &Server) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    eventsource_runtime::telemetry::set_enabled(false);
    let bus = Arc::new(
        NatsBus::new(&server.url)
            .expect("a NATS URL")
            .with_stream(&server.relay_stream)
            .with_subject_prefix(&server.relay_prefix),
    );
    let js = runtime.block_on(async {
        bus.declare().await.expect("the streams");
        server.jetstream().await
    });
    let purge = || async {
        let stream = js.get_stream(&server.relay_stream).await.expect("stream");
        stream.purge().await.expect("purged");
    };

    let mut bench = c.benchmark_group("nats_relay_throughput");
    configure(&mut bench);
    bench.throughput(Throughput::Elements(EVENTS as u64));
    for (name, dispatch) in [
        ("relay_tracing_off", None),
        ("relay_tracing_on", Some(&traced)),
    ] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(
                    runtime,
                    dispatch,
                    iters,
                    || async {
                        purge().await;
                        let store: Arc<dyn EventStore> = Arc::new(stored_events().await);
                        store
                    },
                    |store| async {
                        let checkpoints = Arc::new(InMemoryCheckpointStore::new());
                        let relay = Relay::new(store, checkpoints, bus.clone()).batch_size(BATCH);
                        let published = relay.run_until_caught_up().await.expect("relayed");
                        assert_eq!(published, EVENTS as u64);
                    },
                )
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    println!(
        "nats relay: {} spans exported with tracing on",
        exporter.exported.load(Ordering::Relaxed)
    );
    bench.bench_function("raw_in_flight", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                None,
                iters,
                || async {
                    purge().await;
                    let store = stored_events().await;
                    let events = store.read_all(1, EVENTS).await.expect("events");
                    events
                        .iter()
                        .map(|event| raw_message(&server.relay_prefix, event))
                        .collect::<Vec<_>>()
                },
                |messages| {
                    let js = &js;
                    async move {
                        for window in messages.chunks(BATCH) {
                            let mut pending = Vec::with_capacity(window.len());
                            for (subject, headers, body) in window {
                                let ack = js
                                    .publish_with_headers(
                                        subject.clone(),
                                        headers.clone(),
                                        body.clone().into(),
                                    )
                                    .await
                                    .expect("sent");
                                pending.push(ack);
                            }
                            for ack in pending {
                                let ack = ack.await.expect("acknowledged");
                                assert!(!ack.duplicate, "a new message");
                            }
                        }
                    }
                },
            )
        });
    });
    bench.finish();
}

// ---- consumer throughput --------------------------------------------------------------------

fn consumer_throughput(c: &mut Criterion, runtime: &Runtime, server: &Server) {
    let exporter = DroppingExporter::default();
    let (traced, _provider) = traced_dispatch(&exporter);
    eventsource_runtime::telemetry::set_enabled(false);
    let bus = NatsBus::new(&server.url)
        .expect("a NATS URL")
        .with_stream(&server.consume_stream)
        .with_subject_prefix(&server.consume_prefix);
    let js = runtime.block_on(async {
        bus.declare().await.expect("the streams");
        let store = stored_events().await;
        let events = store.read_all(1, EVENTS).await.expect("events");
        for batch in events.chunks(BATCH) {
            bus.publish(batch).await.expect("published");
        }
        server.jetstream().await
    });
    let groups = AtomicUsize::new(0);
    let stopping = std::sync::Mutex::new(Vec::new());

    let mut bench = c.benchmark_group("nats_consumer_throughput");
    configure(&mut bench);
    bench.throughput(Throughput::Elements(EVENTS as u64));
    for (name, dispatch) in [
        ("group_tracing_off", None),
        ("group_tracing_on", Some(&traced)),
    ] {
        eventsource_runtime::telemetry::set_enabled(dispatch.is_some());
        bench.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(
                    runtime,
                    dispatch,
                    iters,
                    || async {
                        // A group of its own: a new durable consumer reads every message.
                        let n = groups.fetch_add(1, Ordering::Relaxed);
                        let group = bus.consumer_group(&format!("bench-{n}"));
                        let handled = Arc::new((AtomicUsize::new(0), Notify::new()));
                        let counting = Arc::clone(&handled);
                        group.subscribe_fn("count", move |_| {
                            let counting = Arc::clone(&counting);
                            async move {
                                if counting.0.fetch_add(1, Ordering::Relaxed) + 1 >= EVENTS {
                                    counting.1.notify_one();
                                }
                                Ok::<(), HandlerError>(())
                            }
                        });
                        (group, handled)
                    },
                    |(group, handled)| {
                        let stopping = &stopping;
                        async move {
                            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                            let running = tokio::spawn(async move {
                                group.run(async { drop(stopped.await) }).await
                            });
                            handled.1.notified().await;
                            assert_eq!(handled.0.load(Ordering::Relaxed), EVENTS);
                            let _ = stop.send(());
                            // Its graceful stop (up to two seconds) goes on untimed.
                            stopping.lock().expect("stopping").push(running);
                        }
                    },
                )
            });
        });
    }
    eventsource_runtime::telemetry::set_enabled(false);
    println!(
        "nats consumer: {} spans exported with tracing on",
        exporter.exported.load(Ordering::Relaxed)
    );
    let consumers = AtomicUsize::new(0);
    let stream = runtime.block_on(async {
        js.get_stream(&server.consume_stream)
            .await
            .expect("the stream")
    });
    bench.bench_function("raw_pull_double_ack", |b| {
        b.iter_custom(|iters| {
            timed(
                runtime,
                None,
                iters,
                || async { format!("raw-{}", consumers.fetch_add(1, Ordering::Relaxed)) },
                |name| async {
                    let consumer = stream
                        .create_consumer(pull::Config {
                            durable_name: Some(name),
                            ack_policy: AckPolicy::Explicit,
                            ..pull::Config::default()
                        })
                        .await
                        .expect("a consumer");
                    let mut messages = consumer.messages().await.expect("pulling");
                    for _ in 0..EVENTS {
                        let message = messages.next().await.expect("a message").expect("ok");
                        message.double_ack().await.expect("acknowledged");
                    }
                },
            )
        });
    });
    bench.finish();
    runtime.block_on(async {
        let running = std::mem::take(&mut *stopping.lock().expect("stopping"));
        for stopped in running {
            let _ = stopped.await;
        }
    });
}

fn bus_nats(c: &mut Criterion) {
    let Some(server) = Server::from_env() else {
        println!("bus_nats bench: EVENTSOURCE_NATS_URL not set; nothing measured");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    relay_throughput(c, &runtime, &server);
    consumer_throughput(c, &runtime, &server);
    runtime.block_on(server.clean());
}

criterion_group!(benches, bus_nats);
criterion_main!(benches);
