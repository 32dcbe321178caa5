//! A traced HTTP service as teams build one (`examples/http_service.rs`: axum, server spans
//! from `axum-tracing-opentelemetry`, a call to another service carrying `traceparent`),
//! under each telemetry set-up a team may have, its whole trace read back:
//! - `telemetry::init()`: the example run as a process, exporting OTLP/HTTP JSON to a
//!   collector this test runs;
//! - the team's own provider under eventsource's layer (`telemetry::layer`, the runtime's
//!   spans on a tracer of the library's scope);
//! - the team's own `tracing_opentelemetry::layer()` alone (locations on, its default).
//!
//! Each time: the request's SERVER span continues the caller's trace, `command.AddItem` (and
//! its load and append) runs under it, the price lookup's CLIENT span is the parent of the
//! price service's SERVER span, and the runtime's spans say nothing of where in the runtime
//! they were made.

#[path = "../../../examples/http/app.rs"]
mod app;
use eventsource_test_support::otlp;
use eventsource_test_support::otlp_collector;
use eventsource_test_support::stores::{Intercept, Over};

use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry;
use opentelemetry::trace::{SpanId, SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use otlp::{KIND_CLIENT, KIND_SERVER, STATUS_ERROR, decode, example_binary, example_command, tree};
use serde_json::Value as Json;
use tracing_subscriber::layer::SubscriberExt as _;

/// The caller's trace, as the example's demo and these tests send it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// ---- `telemetry::init()`: the example as a process, over OTLP. --------------------------------

#[test]
fn under_init_the_request_is_one_trace_from_the_server_span_to_the_append() {
    let (endpoint, requests) = otlp_collector::collector();
    let binary = example_binary("http_service", &[]);
    let output = example_command(&binary, &endpoint)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for answer in ["-> 201", "-> 422", "-> 200"] {
        assert!(stdout.contains(answer), "{answer}: {stdout}");
    }
    let bodies: Vec<Json> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .map(|r| serde_json::from_slice(&r.body).expect("an OTLP/JSON body"))
        .collect();
    let spans = decode(&bodies);
    let dump = tree(&spans);
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);

    let servers: Vec<_> = named("POST /carts/{id}/items").collect();
    assert_eq!(servers.len(), 2, "two POSTs, each a SERVER span:\n{dump}");
    for server in &servers {
        assert_eq!(server.kind, KIND_SERVER, "{dump}");
        assert_eq!(server.trace_id, TRACE_ID, "the caller's trace:\n{dump}");
        assert_eq!(server.parent_span_id, CALLER_SPAN_ID, "{dump}");
        // The application's (here axum's) spans are not the library's.
        assert_eq!(server.scope.0, "http_service", "{dump}");
    }
    let server_ids: Vec<&str> = servers.iter().map(|s| s.span_id.as_str()).collect();
    let commands: Vec<_> = named("command.AddItem").collect();
    assert_eq!(commands.len(), 2, "{dump}");
    for command in &commands {
        assert!(
            server_ids.contains(&command.parent_span_id.as_str()),
            "the command under its request:\n{dump}"
        );
        let version = env!("CARGO_PKG_VERSION").to_owned();
        assert_eq!(command.scope, ("eventsource".to_owned(), version), "{dump}");
        assert!(
            !command
                .attributes
                .keys()
                .any(|key| key.starts_with("code.")),
            "{dump}"
        );
    }
    let refused = commands
        .iter()
        .find(|c| c.status_code == STATUS_ERROR)
        .expect("the refused command is an error");
    assert!(refused.status_message.contains("at least 1"), "{dump}");
    let appends: Vec<_> = named("eventsource.event_store.append").collect();
    assert_eq!(appends.len(), 1, "{dump}");
    assert_eq!(appends[0].trace_id, TRACE_ID);

    let lookups: Vec<_> = named("prices.lookup").collect();
    assert_eq!(lookups.len(), 2, "{dump}");
    let prices: Vec<_> = named("GET /prices/{product}").collect();
    for lookup in &lookups {
        assert_eq!(lookup.kind, KIND_CLIENT);
        assert!(
            server_ids.contains(&lookup.parent_span_id.as_str()),
            "{dump}"
        );
        let answered = prices.iter().any(|p| {
            p.parent_span_id == lookup.span_id && p.trace_id == TRACE_ID && p.kind == KIND_SERVER
        });
        assert!(answered, "the price service continues the lookup:\n{dump}");
    }
}

// ---- A team's own provider: in this process, spans read back from memory. -----------------------

/// The in-process tests run one at a time: each installs its subscriber on its own thread,
/// and `tracing` caches a callsite's interest for the whole process (a span of the HTTP
/// stack first met while another thread has no subscriber could be cached as never wanted).
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Serves the example's routes on a free port of this (current-thread) runtime, sends the
/// two POSTs in the caller's trace, and returns every span ended.
async fn one_request_each(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = app::router(app::App::new(InMemoryEventStore::new(), base.as_str()));
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let client = reqwest::Client::new();
    for (body, status) in [
        (r#"{"product":"book","quantity":2}"#, 201),
        (r#"{"product":"pen","quantity":0}"#, 422),
    ] {
        let response = client
            .post(format!("{base}/carts/c-1/items"))
            .header("content-type", "application/json")
            .header("traceparent", TRACEPARENT)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
    }
    server.abort();
    exporter.get_finished_spans().unwrap()
}

/// The request's whole trace, as under `init()`.
fn assert_one_trace(spans: &[SpanData]) {
    let dump: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{} {} <- {}",
                s.name,
                s.span_context.span_id(),
                s.parent_span_id
            )
        })
        .collect();
    let dump = dump.join("\n");
    let named = |name: &'static str| {
        spans
            .iter()
            .filter(move |s| s.name == name)
            .collect::<Vec<_>>()
    };
    let servers = named("POST /carts/{id}/items");
    assert_eq!(servers.len(), 2, "{dump}");
    let caller = SpanId::from_hex(CALLER_SPAN_ID).unwrap();
    for server in &servers {
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.span_context.trace_id().to_string(), TRACE_ID);
        assert_eq!(server.parent_span_id, caller, "{dump}");
    }
    let server_ids: Vec<SpanId> = servers.iter().map(|s| s.span_context.span_id()).collect();
    let commands = named("command.AddItem");
    assert_eq!(commands.len(), 2, "{dump}");
    for command in &commands {
        assert!(server_ids.contains(&command.parent_span_id), "{dump}");
    }
    assert_eq!(
        commands
            .iter()
            .filter(|c| matches!(c.status, Status::Error { .. }))
            .count(),
        1,
        "{dump}"
    );
    let appends = named("eventsource.event_store.append");
    assert_eq!(appends.len(), 1, "{dump}");
    assert_eq!(appends[0].span_context.trace_id().to_string(), TRACE_ID);
    let prices = named("GET /prices/{product}");
    for lookup in named("prices.lookup") {
        assert_eq!(lookup.span_kind, SpanKind::Client);
        assert!(server_ids.contains(&lookup.parent_span_id), "{dump}");
        let id = lookup.span_context.span_id();
        assert!(prices.iter().any(|p| p.parent_span_id == id), "{dump}");
    }
}

fn provider() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider, exporter)
}

#[tokio::test]
async fn a_users_provider_under_eventsources_layer_gives_the_runtimes_spans_their_scope() {
    let _one = one_at_a_time().await;
    let (provider, exporter) = provider();
    let layer = telemetry::layer(provider.tracer("carts"))
        .with_library_tracer(provider.tracer_with_scope(telemetry::instrumentation_scope()));
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let spans = one_request_each(&exporter).await;
    assert_one_trace(&spans);
    for span in &spans {
        let scope = span.instrumentation_scope.name();
        if span.name.starts_with("command.") || span.name.starts_with("eventsource.") {
            assert_eq!(scope, "eventsource", "{}", span.name);
            assert_eq!(
                span.instrumentation_scope.version(),
                Some(env!("CARGO_PKG_VERSION"))
            );
        } else if span.name.contains(" /") {
            assert_eq!(scope, "carts", "{}: the application's", span.name);
        }
    }
}

#[tokio::test]
async fn a_users_own_tracing_opentelemetry_layer_gets_no_location_inside_the_runtime() {
    let _one = one_at_a_time().await;
    let (provider, exporter) = provider();
    // `tracing-opentelemetry`'s defaults: each span's code location recorded.
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("carts"));
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    tracing::info_span!("located").in_scope(|| {});
    let spans = one_request_each(&exporter).await;
    assert_one_trace(&spans);
    let has_location = |span: &SpanData| {
        span.attributes
            .iter()
            .any(|kv| kv.key.as_str().starts_with("code."))
    };
    let located = spans.iter().find(|s| s.name == "located").unwrap();
    assert!(
        has_location(located),
        "the layer records locations: {located:?}"
    );
    for span in &spans {
        if span.name.starts_with("command.") || span.name.starts_with("eventsource.") {
            assert!(
                !has_location(span),
                "{} tells where in the runtime: {:?}",
                span.name,
                span.attributes
            );
        }
    }
}

// ---- Errors as status codes. -------------------------------------------------------------------

/// A store where another request always changes the cart first: every append conflicts.
struct Contended(InMemoryEventStore);

#[eventsource_runtime::async_trait]
impl Intercept for Contended {
    type Inner = InMemoryEventStore;

    fn inner(&self) -> &InMemoryEventStore {
        &self.0
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<eventsource_runtime::event::NewEvent>,
    ) -> Result<eventsource_runtime::store::AppendResult, eventsource_runtime::store::StoreError>
    {
        let other = serde_json::json!({"product": "mug", "quantity": 1, "unit_price_cents": 300});
        let other = eventsource_runtime::event::NewEvent::new("ItemAdded", 1, other);
        self.0
            .append(stream, ExpectedVersion::Any, vec![other])
            .await?;
        self.0.append(stream, expected, events).await
    }
}

#[tokio::test]
async fn a_refused_command_is_a_422_and_a_conflict_a_409_each_with_its_reason() {
    let _one = one_at_a_time().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let contended = app::router(app::App::new(
        Over(Contended(InMemoryEventStore::new())),
        base.as_str(),
    ));
    let server = tokio::spawn(async move { axum::serve(listener, contended).await });
    let client = reqwest::Client::new();
    let post = async |body: &str| {
        let response = client
            .post(format!("{base}/carts/c-9/items"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Json>().await.unwrap())
    };
    let (status, body) = post(r#"{"product":"pen","quantity":0}"#).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "the quantity must be at least 1");
    let (status, body) = post(r#"{"product":"book","quantity":1}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "the cart changed: try again");
    server.abort();
}
