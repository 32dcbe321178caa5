//! A traced HTTP service: the cart behind axum routes (`examples/http/app.rs`), its requests'
//! server spans from `axum-tracing-opentelemetry`, under `telemetry::init()`.
//!
//! `cargo run --example http_service` serves on a free port of 127.0.0.1 and sends itself
//! three requests, as a client continuing a trace of its own (`traceparent` set): an item
//! added (`201`), an item refused (`422`, the cart's reason in the body), the cart read back
//! (`200`). It prints each answer and the trace id, then exits; the traces go to stderr as
//! trees, or to a collector with `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318`. One
//! trace holds the request's SERVER span, `command.AddItem` with its load and append, and the
//! price lookup's CLIENT span with the price service's SERVER span under it.
//!
//! `cargo run --example http_service -- --serve 127.0.0.1:3000` serves until Ctrl-C:
//!
//! ```text
//! curl -i -X POST localhost:3000/carts/c-1/items -H 'content-type: application/json' \
//!      -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!      -d '{"product": "book", "quantity": 2}'
//! curl -i localhost:3000/carts/c-1
//! ```

#[path = "http/app.rs"]
mod app;
#[path = "support/exit.rs"]
mod support;

use std::error::Error;
use std::process::ExitCode;

use eventsource_runtime::prelude::*;

/// A trace the demo's requests continue, as a caller in another service would send it.
const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = eventsource_runtime::telemetry::init();
    let outcome = run().await;
    support::finish(telemetry, outcome)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let serve = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--serve"), Some(address)) => Some(address),
        _ => return Err("usage: http_service [--serve ADDRESS]".into()),
    };
    let address = serve.as_deref().unwrap_or("127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let service = app::router(app::App::new(InMemoryEventStore::new(), base.as_str()));
    if serve.is_some() {
        println!("serving on {base} (Ctrl-C stops)");
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let outcome = demo(&base).await;
    server.abort();
    outcome
}

/// Three requests in the caller's trace; each answer printed.
async fn demo(base: &str) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::new();
    let trace_id = CALLER_TRACEPARENT.split('-').nth(1).unwrap_or_default();
    println!("caller's trace id: {trace_id}");
    let requests = [
        (
            "POST",
            "/carts/c-1/items",
            r#"{"product": "book", "quantity": 2}"#,
        ),
        (
            "POST",
            "/carts/c-1/items",
            r#"{"product": "pen", "quantity": 0}"#,
        ),
        ("GET", "/carts/c-1", ""),
    ];
    for (method, path, body) in requests {
        let url = format!("{base}{path}");
        let request = if method == "POST" {
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
        } else {
            client.get(&url)
        };
        let response = request
            .header("traceparent", CALLER_TRACEPARENT)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        println!("{method} {path} -> {status} {text}");
    }
    Ok(())
}
