//! Trace context read from what arrives: broker headers and stored event metadata.
//!
//! The input is read as each carrier in turn:
//! - `key: value` lines: text headers, as Kafka and NATS carry them
//!   (`bus::wire::read_text_headers`);
//! - an AMQP header table in its wire encoding, as RabbitMQ carries it (the RabbitMQ
//!   consumer's reading of typed headers);
//! - a JSON object: stored metadata, as a store keeps it (`Metadata::from_json`, read on
//!   first use) and as a message body carries it (deserialized at once).
//!
//! From each, the W3C context is extracted (`telemetry::propagation`). Checked: a context
//! counts as stored exactly when it is valid; writing the context read and reading it back
//! gives it again, baggage values unchanged (a member left out only when the header would
//! pass its 8,192 bytes), and writing that again writes the same text, byte for byte (a
//! consumer that stores what it read keeps it);
//! writing a context into stored metadata makes that the metadata's context, keeps its
//! other entries, and its stored form says the same.

use std::collections::{BTreeMap, HashMap};

use eventsource_runtime::__fuzz::rabbitmq;
use eventsource_runtime::bus::wire;
use eventsource_runtime::event::Metadata;
use eventsource_runtime::telemetry::propagation::{self, W3cBaggagePropagator};
use lapin::types::parsing::parse_field_table;
use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

/// Runs the checks on one input; a failed one panics.
pub fn check(data: &[u8]) {
    let (headers, _) = crate::headers_and_body(data);
    let (trace, state) = wire::read_text_headers(headers);
    assert!(state.attempt >= 1);
    check_carrier(&trace);

    if let Ok((_, table)) = parse_field_table(data) {
        let (trace, state) = rabbitmq::read_headers(Some(&table));
        assert!(state.attempt >= 1);
        check_carrier(&trace);
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(stored) = Metadata::from_json(text) {
        let extracted = check_carrier(&stored);
        for cx in [extracted, sample(TraceState::default()), with_state()] {
            inject_into(&stored, &cx);
        }
        // Read eagerly (a message body's metadata), the entries are the same.
        if let Ok(read) = serde_json::from_str::<Metadata>(text) {
            assert_eq!(read, stored);
        }
    }
}

/// Extracts the context of `carrier` and checks it; returns it.
fn check_carrier(carrier: &Metadata) -> Context {
    let cx = propagation::extract(carrier);
    let span_context = cx.span().span_context().clone();
    match propagation::stored_span_context(carrier) {
        Some(stored) => {
            assert!(stored.is_valid());
            assert!(carrier.traceparent().is_some());
            assert_eq!(stored, span_context);
        }
        None => assert!(carrier.traceparent().is_none() || !span_context.is_valid()),
    }
    let mut written = Metadata::new();
    propagation::inject(&cx, &mut written);
    let read_back = propagation::extract(&written);
    if span_context.is_valid() {
        assert_eq!(read_back.span().span_context(), &span_context);
    } else {
        assert!(written.is_empty(), "{written:?}");
    }
    let mut again = Metadata::new();
    propagation::inject(&read_back, &mut again);
    // Written again from what was read, the same text, baggage included: its members in
    // the order of their keys, each value encoded so that it reads back as it was.
    assert_eq!(written, again);
    if span_context.is_valid() {
        baggage_kept(&cx, &read_back, &written);
    }
    cx
}

/// What one hop kept of `cx`'s baggage (`read_back`, read from `written`): every entry as
/// it was; one left out only when it would have taken the header past its 8,192 bytes.
fn baggage_kept(cx: &Context, read_back: &Context, written: &Metadata) {
    let had = baggage(cx);
    let kept = baggage(read_back);
    for (key, entry) in &kept {
        assert_eq!(had.get(key), Some(entry), "{key}");
    }
    let header = written.get(Metadata::BAGGAGE).map_or(0, str::len);
    for (key, (value, metadata)) in had.iter().filter(|(key, _)| !kept.contains_key(*key)) {
        let alone = Context::new().with_baggage([KeyValueMetadata::new(
            key.clone(),
            value.clone(),
            metadata.as_str(),
        )]);
        let mut headers = HashMap::new();
        W3cBaggagePropagator::new().inject_context(&alone, &mut headers);
        let member = headers.get("baggage").map_or(0, String::len);
        assert!(
            header + 1 + member > 8192,
            "{key} left out of {header} bytes"
        );
    }
}

/// The baggage of `cx`: its entries and their properties, sorted.
fn baggage(cx: &Context) -> BTreeMap<String, (String, String)> {
    cx.baggage()
        .iter()
        .map(|(key, (value, metadata))| {
            let entry = (value.as_str().to_owned(), metadata.as_str().to_owned());
            (key.as_str().to_owned(), entry)
        })
        .collect()
}

/// Writes `cx` into `stored` and checks what that makes.
fn inject_into(stored: &Metadata, cx: &Context) {
    let span_context = cx.span().span_context().clone();
    if !span_context.is_valid() {
        return;
    }
    let mut metadata = stored.clone();
    propagation::inject(cx, &mut metadata);
    assert_eq!(
        propagation::extract(&metadata).span().span_context(),
        &span_context,
        "{metadata:?}"
    );
    for (key, value) in stored.iter() {
        if !wire::TRACE_HEADERS.contains(&key) {
            assert_eq!(metadata.get(key), Some(value), "{key}");
        }
    }
    let text = serde_json::to_string(&metadata).expect("stored form");
    let back = Metadata::from_json(text).expect("stored form is an object");
    assert_eq!(back, metadata);
}

/// A sampled remote span's context with `state`.
fn sample(state: TraceState) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// [`sample`] with a trace state.
fn with_state() -> Context {
    let state = TraceState::from_key_value([("vendor", "a1")]).expect("a valid trace state");
    sample(state)
}
