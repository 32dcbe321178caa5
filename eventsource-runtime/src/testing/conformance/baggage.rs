//! W3C baggage through what keeps and carries it: values holding `%`, `,`, `;`, `=` and
//! non-ASCII read back unchanged, byte for byte, after any number of hops. The stores' check
//! is here ([`survives_three_appends`]); the brokers' is
//! [`broker::baggage`](super::broker::baggage).

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use serde_json::json;

use crate::event::{Metadata, NewEvent, StreamId};
use crate::store::{EventStore, ExpectedVersion};
use crate::telemetry::propagation;

/// A baggage entry as it is read: its value and its properties.
pub type Entries = BTreeMap<String, (String, String)>;

/// What users put in baggage, the characters the W3C encoding is about in it: `%` (and
/// text already percent-encoded), `,`, `;`, `=`, white space and non-ASCII.
pub const VALUES: [(&str, &str, &str); 6] = [
    ("discount", "100% off, today; only", ""),
    ("encoded", "DF%2525555%28x%29", ""),
    ("query", "q=a b&sort=price desc", "source=web;flag"),
    ("token", "YWJj==", ""),
    ("city", "Zürich 東京 🚀", "lang=de"),
    ("user", "alice", ""),
];

/// The baggage of [`VALUES`].
#[must_use]
pub fn baggage() -> Baggage {
    let mut baggage = Baggage::new();
    for (key, value, properties) in VALUES {
        baggage.insert_with_metadata(key, value, properties);
    }
    baggage
}

/// The entries of `cx`'s baggage, sorted.
#[must_use]
pub fn entries(cx: &Context) -> Entries {
    cx.baggage()
        .iter()
        .map(|(key, (value, metadata))| {
            let entry = (value.as_str().to_owned(), metadata.as_str().to_owned());
            (key.as_str().to_owned(), entry)
        })
        .collect()
}

/// A sampled remote parent carrying [`baggage`]: what a service's incoming request gives.
#[must_use]
pub fn flow_context() -> Context {
    let parent = SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new()
        .with_remote_span_context(parent)
        .with_baggage(baggage())
}

/// An event stored with [`baggage`] in its context is read back with it unchanged, and the
/// context read from it, stored with the next event, again: three hops through the store
/// (a projection that appends what it read, say), the stored text the same each time.
pub async fn survives_three_appends(store: Arc<dyn EventStore>) {
    let expected = entries(&flow_context());
    let mut cx = flow_context();
    let mut texts = Vec::new();
    for hop in 1..=3_u64 {
        let stream = StreamId::new("Order", format!("baggage-{hop}"));
        let mut metadata = Metadata::new();
        propagation::inject(&cx, &mut metadata);
        let event = NewEvent::new("Noted", 1, json!({ "hop": hop })).with_metadata(metadata);
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("appended");
        let loaded = store.load(&stream, 1).await.expect("loaded");
        let stored = &loaded.first().expect("the event appended").metadata;
        texts.push(stored.get(Metadata::BAGGAGE).map(str::to_owned));
        cx = propagation::extract(stored);
        assert_eq!(
            entries(&cx),
            expected,
            "the baggage read back after hop {hop}"
        );
        assert_eq!(
            cx.span().span_context().trace_id(),
            flow_context().span().span_context().trace_id()
        );
    }
    assert!(texts[0].is_some(), "stored");
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");
}
