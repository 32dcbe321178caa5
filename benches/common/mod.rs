//! What several benches share: the tracing pipeline their `tracing_on` variants run under.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;

/// An exporter that drops every span (and counts them).
#[derive(Debug, Clone, Default)]
pub struct DroppingExporter {
    pub exported: Arc<AtomicU64>,
}

impl SpanExporter for DroppingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.exported
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Eventsource's layer on a registry, a simple processor, the dropping exporter: what
/// tracing costs, without the network.
pub fn traced_dispatch(exporter: &DroppingExporter) -> (Dispatch, SdkTracerProvider) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(eventsource_runtime::telemetry::layer(
        provider.tracer("bench"),
    ));
    (Dispatch::new(subscriber), provider)
}
