//! `#[traced]` spans and the application's own `tracing` spans and events, in both
//! directions, on both of `#[traced]`'s paths:
//!
//! - under eventsource's layer (`testing::capture()`, as under `telemetry::init()`), a
//!   `#[traced]` span is made on the OpenTelemetry SDK directly;
//! - under a plain `tracing-opentelemetry` layer it is an ordinary `tracing` span.
//!
//! Either way the tree, the span events and the attributes must come out the same.

use eventsource_runtime::telemetry;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture, events, kind};
use eventsource_runtime::traced;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

#[traced(kind = client, fields(order.id = id, lines = lines.len()))]
fn reserve(id: &str, lines: &[u32]) -> usize {
    let _inner = tracing::info_span!("user.inner").entered();
    tracing::info!(reserved = lines.len() as i64, "stock reserved");
    lines.len()
}

#[traced]
fn logs_in_body() {
    tracing::info!(sku = "A-1", "picked");
    tracing::error!("out of paper");
    telemetry::set_attribute("picker", "robot-7");
}

#[traced(name = "place")]
async fn place(id: &str) -> usize {
    tokio::task::yield_now().await;
    let child = async {
        tokio::task::yield_now().await;
        tracing::info!("inside child");
    };
    tracing::Instrument::instrument(child, tracing::info_span!("user.child")).await;
    tokio::task::yield_now().await;
    reserve(id, &[1, 2])
}

#[traced]
fn context_inside() -> (opentelemetry::Context, eventsource_runtime::event::Metadata) {
    let mut stored = eventsource_runtime::event::Metadata::new();
    telemetry::propagation::inject_current(&mut stored);
    (telemetry::current_context(), stored)
}

fn story() {
    let outer = tracing::info_span!("user.request");
    let _entered = outer.enter();
    reserve("o-1", &[1, 2, 3]);
}

/// The tree of [`story`]: `user.request` > `reserve` > `user.inner`, with the event on
/// `user.inner` (the innermost span when it was logged).
fn assert_story(spans: &CapturedSpans) {
    spans.assert_child_of("reserve", "user.request");
    spans.assert_child_of("user.inner", "reserve");
    let reserve = spans.get("reserve");
    assert_eq!(kind(reserve), SpanKind::Client);
    assert_eq!(
        attribute(reserve, "order.id"),
        Some(&Value::from("o-1".to_owned()))
    );
    assert_eq!(attribute(reserve, "lines"), Some(&Value::I64(3)));
    let inner = spans.get("user.inner");
    assert_eq!(events(inner, "stock reserved").len(), 1);
    assert!(events(reserve, "stock reserved").is_empty());
}

#[test]
fn under_eventsource_layer_the_tree_reads_like_tracing_spans() {
    let capture = capture();
    story();
    assert_story(&capture.spans());
}

#[test]
fn under_a_plain_tracing_opentelemetry_layer_the_tree_is_the_same() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("plain")));
    tracing::subscriber::with_default(subscriber, story);
    let spans = CapturedSpans::from(exporter.get_finished_spans().expect("spans"));
    assert_story(&spans);
}

#[test]
fn events_in_a_traced_body_land_on_its_span() {
    let capture = capture();
    tracing::info_span!("user.request").in_scope(logs_in_body);
    let spans = capture.spans();
    let body = spans.get("logs_in_body");
    let picked = events(body, "picked");
    assert_eq!(picked.len(), 1);
    assert!(
        picked[0]
            .iter()
            .any(|kv| kv.key.as_str() == "sku" && kv.value == Value::from("A-1".to_owned()))
    );
    assert_eq!(events(body, "out of paper").len(), 1);
    assert!(
        matches!(body.status, Status::Error { .. }),
        "an ERROR event"
    );
    assert_eq!(
        attribute(body, "picker"),
        Some(&Value::from("robot-7")),
        "set_attribute reaches the traced span"
    );
    let request = spans.get("user.request");
    assert!(request.events.is_empty(), "nothing on the caller's span");
    assert!(attribute(request, "picker").is_none());
}

#[tokio::test]
async fn the_span_stays_current_across_awaits_and_interleaved_tasks() {
    let capture = capture();
    let (a, b) = tokio::join!(place("a"), place("b"));
    assert_eq!((a, b), (2, 2));
    let spans = capture.spans();
    let places = spans.all("place");
    assert_eq!(places.len(), 2);
    for place in places {
        assert!(spans.is_root(place));
        let children = spans.children(place);
        let mut names: Vec<&str> = children.iter().map(|s| s.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(names, ["reserve", "user.child"], "each task keeps its own");
        let child = children
            .iter()
            .find(|s| s.name == "user.child")
            .expect("child");
        assert_eq!(events(child, "inside child").len(), 1);
    }
}

#[test]
fn current_context_and_stored_context_see_the_traced_span() {
    let capture = capture();
    let (cx, stored) = tracing::info_span!("user.request").in_scope(context_inside);
    let spans = capture.spans();
    let traced = spans.get("context_inside");
    assert_eq!(
        cx.span().span_context().span_id(),
        traced.span_context.span_id()
    );
    let traceparent = stored.traceparent().expect("a stored traceparent");
    assert!(
        traceparent.contains(&traced.span_context.span_id().to_string()),
        "the stored context is the traced span's: {traceparent}"
    );
    // Outside of any span again: no context.
    assert!(
        !telemetry::current_context()
            .span()
            .span_context()
            .is_valid()
    );
}

// ---- the runtime's own spans under a `#[traced]` caller ------------------------------------

mod ledger {
    use eventsource_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Credited {
        pub amount: u64,
    }

    #[derive(Default, Aggregate)]
    #[aggregate(type = "Ledger", events(Credited))]
    pub struct Ledger {
        pub balance: u64,
    }

    impl Apply<Credited> for Ledger {
        fn apply(&mut self, e: &Credited) {
            self.balance += e.amount;
        }
    }
}

#[traced(name = "http.post_credit")]
async fn post_credit(
    service: &eventsource_runtime::prelude::CommandService<ledger::Ledger>,
) -> Result<u64, String> {
    let outcome = service
        .execute_with("ledger-1", |_| {
            Ok::<_, std::fmt::Error>(vec![ledger::Credited { amount: 5 }.into()])
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(outcome.version())
}

#[tokio::test]
async fn a_command_run_in_a_traced_function_is_its_child_down_to_the_bus() {
    use eventsource_runtime::prelude::*;
    let capture = capture();
    let bus = InMemoryEventBus::new();
    bus.subscribe_fn("audit", |_event| async { Ok::<(), HandlerError>(()) });
    let service = CommandService::<ledger::Ledger>::new(InMemoryEventStore::new()).with_bus(bus);
    assert_eq!(post_credit(&service).await, Ok(1));
    let spans = capture.spans();
    let command = spans
        .0
        .iter()
        .find(|s| s.name.starts_with("command."))
        .expect("the command span");
    assert_eq!(
        spans.parent(command).map(|p| p.name.as_ref()),
        Some("http.post_credit")
    );
    spans.assert_child_of("eventsource.repository.save", command.name.as_ref());
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );
    spans.assert_child_of("eventsource.event_bus.publish", command.name.as_ref());
    spans.assert_child_of(
        "eventsource.event_bus.consume",
        "eventsource.event_bus.publish",
    );
    spans.assert_child_of(
        "eventsource.event_bus.handle",
        "eventsource.event_bus.consume",
    );
}
