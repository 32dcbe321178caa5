//! The event bus, read back from the in-memory exporters: a command's publish (PRODUCER,
//! child of the command span, its own context in the message headers), the live consume
//! (CONSUMER, child of the publish span), the handle spans (INTERNAL, one per handler),
//! failures, redeliveries and dead letters, replays and batches (new roots, linked),
//! missing or malformed context, the switches, and the bus metrics.
//!
//! Every test installs a span capture before its first span: `tracing` caches a callsite's
//! interest when it is first hit, and a callsite first hit on a thread without a capture,
//! while another test has one, could be cached as unwanted, losing that test's spans. The
//! process switch and the trace-context counters are global: the test flipping the switch
//! or counting takes `GLOBAL` for writing, every other test for reading.

use eventsource_test_support::domain;

mod failures;
mod metrics;
mod roots;
mod story;
mod switches;
mod transport;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use domain::{Order, OrderEvent, OrderPlaced, OrderShipped, sample_order};
use eventsource_runtime::bus::BusTelemetry;
use eventsource_runtime::bus::{
    BusError, BusMessage, Dispatcher, EventBus, HandlerError, InMemoryEventBus, PublishReport,
    handler_fn, instrument,
};
use eventsource_runtime::event::Metadata;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::{self, propagation, toggles};
use eventsource_runtime::testing::{
    MetricCapture, attribute, capture, capture_metrics, events, kind,
};
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::RwLock;
use tracing::Instrument as _;

static GLOBAL: RwLock<()> = RwLock::const_new(());
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

const PUBLISH: &str = attr::SPAN_BUS_PUBLISH;
const CONSUME: &str = attr::SPAN_BUS_CONSUME;
const HANDLE: &str = attr::SPAN_BUS_HANDLE;

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn int(v: i64) -> Value {
    Value::I64(v)
}

/// A handler recording the events it received.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl Recorder {
    fn subscribe(&self, bus: &InMemoryEventBus, name: &'static str) {
        let seen = Arc::clone(&self.seen);
        bus.subscribe_fn(name, move |event| {
            seen.lock().unwrap().push(event);
            async { Ok::<(), HandlerError>(()) }
        });
    }

    fn types(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.event_type.to_string())
            .collect()
    }
}

/// A handler that fails its first `failures` calls (all, with `usize::MAX`).
fn failing(name: &'static str, failures: usize, calls: &Arc<AtomicUsize>) -> impl EventHandler {
    let calls = Arc::clone(calls);
    handler_fn(name, move |_event| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(HandlerError::new("smtp server down"))
            } else {
                Ok(())
            }
        }
    })
}

fn span_id_of(context: &opentelemetry::trace::SpanContext) -> SpanId {
    context.span_id()
}

/// The span context stored in `metadata`'s `traceparent`.
fn traceparent_span(metadata: &Metadata) -> SpanId {
    span_id_of(&propagation::stored_span_context(metadata).expect("a valid traceparent"))
}

fn has_link_to(span: &SpanData, target: &SpanData) -> bool {
    span.links.links.iter().any(|l| {
        l.span_context.span_id() == target.span_context.span_id()
            && l.span_context.trace_id() == target.span_context.trace_id()
    })
}

fn place(order_id: &str) -> domain::PlaceOrder {
    sample_order(order_id, "ada")
}
