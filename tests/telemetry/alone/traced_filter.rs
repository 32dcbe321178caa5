//! A subscriber's filter (`RUST_LOG` style) and `#[traced]`'s direct path.
//!
//! Alone in its test binary: a subscriber that turns a module's callsites off takes part in
//! every callsite's cached interest, which tracing computes over all the subscribers alive
//! in the process. A callsite first reached on one thread while another registers a
//! subscriber can keep an interest computed without it, so beside the captures of other
//! tests this filter could turn their `#[traced]` spans off too.

use eventsource_runtime::telemetry;
use eventsource_runtime::traced;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

#[traced(kind = client, fields(order.id = id))]
fn reserve(id: &str) -> usize {
    let _inner = tracing::info_span!("user.inner").entered();
    id.len()
}

/// A filter on the subscriber (`RUST_LOG` style) drops `#[traced]` spans on the direct path
/// too. (A per-layer filter is consulted through the callsite's interest, which a test
/// binary with many subscribers alive at once blurs; `telemetry::init()` has one.)
#[test]
fn a_subscriber_filter_applies_to_the_direct_path() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info,traced_filter=off"))
        .with(telemetry::layer(provider.tracer("filtered")));
    tracing::subscriber::with_default(subscriber, || {
        assert!(eventsource_runtime::__private::traced::has_direct());
        reserve("o-9");
    });
    let names: Vec<_> = exporter
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.is_empty(),
        "`traced_filter=off` drops them: {names:?}"
    );
}
