//! An event's metadata as the carrier of its trace context: what the propagators read and
//! write, and the common case (a context alone, or beside the lineage its command stamped)
//! written at once in the form the stores keep, so that no store builds and serializes
//! entries for it. The `traceparent` is written here, the same text (tested) for a
//! twentieth of the cost: the SDK's `format!` of it was a tenth of a traced command.

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags};

use super::{Metadata, TRACEPARENT_LEN};
use crate::telemetry::propagation::{self, ContextCarrier};

impl Injector for Metadata {
    fn set(&mut self, key: &str, value: String) {
        // An empty tracestate/baggage carries nothing; keep the stored metadata lean.
        if !value.is_empty() {
            self.insert(key, value);
        }
    }
}

impl Extractor for Metadata {
    fn get(&self, key: &str) -> Option<&str> {
        Metadata::get(self, key)
    }

    fn keys(&self) -> Vec<&str> {
        Metadata::keys(self).collect()
    }
}

impl ContextCarrier for Metadata {
    fn inject_context(&mut self, cx: &Context) {
        let metadata = self;

        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        let traceparent = traceparent(span_context);
        // What `TraceContextPropagator` writes (an empty tracestate is left out, as `set` does).
        let trace_state = span_context.trace_state().header();
        if trace_state.is_empty() && cx.baggage().is_empty() {
            // The common cases, an event with no metadata of its own, or only the lineage its
            // command stamped: its stored form is written at once, and stores keep it as it is
            // instead of building entries to serialize.
            if metadata.is_empty() {
                *metadata = Metadata::from_traceparent(traceparent);
                return;
            }
            if metadata.append_traceparent(&traceparent) {
                return;
            }
        }
        // Hex digits and dashes: ASCII, so this never falls back to the empty string.
        let text = std::str::from_utf8(&traceparent).unwrap_or_default();
        metadata.insert(Metadata::TRACEPARENT, text);
        // The trace state belongs to its `traceparent`: one the metadata had, of another
        // context, goes with it.
        if trace_state.is_empty() {
            metadata.remove(Metadata::TRACESTATE);
        } else {
            metadata.insert(Metadata::TRACESTATE, trace_state);
        }
        propagation::inject_baggage(cx, metadata);
    }

    /// Clones of one metadata, one after the other, share one written form (an append's
    /// events, each of which would otherwise format and allocate the same text).
    fn inject_each<'m>(cx: &Context, carriers: impl Iterator<Item = &'m mut Self>)
    where
        Self: 'm,
    {
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        // The metadata last written, and what it became: clones of one metadata (a
        // command's events, an append's events without metadata of their own) share it.
        let mut last: Option<(Metadata, Metadata)> = None;
        for metadata in carriers.filter(|metadata| metadata.traceparent().is_none()) {
            match &last {
                Some((before, after)) if metadata.is_same(before) => *metadata = after.clone(),
                _ => {
                    let before = metadata.clone();
                    metadata.inject_context(cx);
                    last = Some((before, metadata.clone()));
                }
            }
        }
    }
}

/// The W3C `traceparent` of a valid span context: version 00, trace id, span id and the
/// sampled flag, in lower-case hex (`00-{32}-{16}-{2}`), as `TraceContextPropagator` writes it.
fn traceparent(span_context: &SpanContext) -> [u8; TRACEPARENT_LEN] {
    let flags = span_context.trace_flags() & TraceFlags::SAMPLED;
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&mut text[3..35], &span_context.trace_id().to_bytes());
    write_hex(&mut text[36..52], &span_context.span_id().to_bytes());
    write_hex(&mut text[53..55], &[flags.to_u8()]);
    text
}

/// Writes `bytes` as lower-case hex into `out` (two digits a byte).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::trace::{SpanId, TraceId, TraceState};

    use super::*;
    use crate::telemetry::propagation::{PROPAGATOR, extract, inject, inject_each};
    use opentelemetry::propagation::TextMapPropagator as _;

    /// What OpenTelemetry's own propagators write for `cx`, empty values left out.
    fn written_by_opentelemetry(cx: &Context) -> HashMap<String, String> {
        let mut headers = HashMap::new();
        PROPAGATOR.inject_context(cx, &mut headers);
        headers.retain(|_, value| !value.is_empty());
        headers
    }

    fn written_here(cx: &Context) -> HashMap<String, String> {
        let mut metadata = Metadata::new();
        inject(cx, &mut metadata);
        metadata
            .iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    /// A context whose span is a sampled remote one, with no trace state or baggage.
    fn sampled_remote_context() -> Context {
        let span_context = SpanContext::new(
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(span_context)
    }

    #[test]
    fn the_injected_context_is_what_opentelemetrys_propagators_write() {
        let state = TraceState::from_key_value([("vendor", "a1"), ("other", "b2")]).unwrap();
        let ids = [
            (
                0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
                0x00f0_67aa_0ba9_02b7,
            ),
            (1, u64::MAX),
            (u128::MAX, 1),
        ];
        for (trace_id, span_id) in ids {
            for flags in [
                TraceFlags::SAMPLED,
                TraceFlags::NOT_SAMPLED,
                TraceFlags::new(0xff),
            ] {
                for state in [TraceState::default(), state.clone()] {
                    let span_context = SpanContext::new(
                        TraceId::from(trace_id),
                        SpanId::from(span_id),
                        flags,
                        true,
                        state,
                    );
                    let cx = Context::new().with_remote_span_context(span_context);
                    let with_baggage = cx.with_baggage([KeyValue::new("tenant", "t 1")]);
                    for cx in [cx, with_baggage] {
                        let written = written_here(&cx);
                        assert_eq!(written, written_by_opentelemetry(&cx));
                        assert_eq!(written["traceparent"].len(), 55);
                    }
                }
            }
        }
        // No valid span: nothing, as theirs.
        assert!(written_here(&Context::new()).is_empty());
        assert!(written_by_opentelemetry(&Context::new()).is_empty());
    }

    #[test]
    fn a_context_alone_is_written_in_the_form_stores_keep() {
        let cx = sampled_remote_context();
        let theirs = written_by_opentelemetry(&cx);

        let mut metadata = Metadata::new();
        inject(&cx, &mut metadata);
        let stored = metadata.stored_json().expect("the stored form").to_string();
        assert_eq!(stored, serde_json::to_string(&theirs).unwrap());

        // Metadata of the event's own keeps its entries and gains the context.
        let mut own = Metadata::new().with(Metadata::CORRELATION_ID, "c-1");
        inject(&cx, &mut own);
        assert!(own.stored_json().is_none());
        assert_eq!(own.correlation_id(), Some("c-1"));
        assert_eq!(own.traceparent(), Some(theirs["traceparent"].as_str()));
    }

    #[test]
    fn a_context_written_over_another_replaces_its_trace_state() {
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        let cx = sampled_remote_context();
        let theirs = written_by_opentelemetry(&cx);
        let entries = Metadata::new()
            .with(Metadata::TRACEPARENT, other)
            .with(Metadata::TRACESTATE, "vendor=a1")
            .with(Metadata::CORRELATION_ID, "c-1");
        // Entries, stored text naming the keys, stored text with a key escaped.
        let stored = |json: &str| Metadata::from_json(json).unwrap();
        for mut metadata in [
            entries,
            stored(r#"{"tracestate":"vendor=a1","correlation_id":"c-1"}"#),
            stored(r#"{"trace\u0073tate":"vendor=a1","correlation_id":"c-1"}"#),
        ] {
            inject(&cx, &mut metadata);
            assert_eq!(metadata.traceparent(), Some(theirs["traceparent"].as_str()));
            assert_eq!(metadata.get(Metadata::TRACESTATE), None, "{metadata:?}");
            assert_eq!(metadata.correlation_id(), Some("c-1"));
            let extracted = extract(&metadata);
            assert_eq!(extracted.span().span_context(), cx.span().span_context());
        }
    }

    #[test]
    fn injecting_into_each_writes_what_inject_writes_and_keeps_a_traceparent_of_its_own() {
        let cx = sampled_remote_context();
        let own_context = "00-11111111111111111111111111111111-2222222222222222-01";
        let carriers = || {
            vec![
                Metadata::new(),
                Metadata::new().with(Metadata::CORRELATION_ID, "c-1"),
                Metadata::new(),
                Metadata::new().with(Metadata::TRACEPARENT, own_context),
            ]
        };
        let with_baggage = cx.with_baggage([KeyValue::new("tenant", "t 1")]);
        for cx in [cx, with_baggage] {
            let mut each = carriers();
            inject_each(&cx, each.iter_mut());
            let mut one_by_one = carriers();
            for metadata in &mut one_by_one[..3] {
                inject(&cx, metadata);
            }
            assert_eq!(each, one_by_one);
            assert_eq!(each[0].stored_json(), one_by_one[0].stored_json());
            assert_eq!(each[3].traceparent(), Some(own_context), "its own, kept");
        }
        // No valid span: nothing written.
        let mut untouched = carriers();
        inject_each(&Context::new(), untouched.iter_mut());
        assert_eq!(untouched, carriers());
    }

    #[test]
    fn a_commands_events_share_their_stamped_lineage_with_its_context() {
        let cx = sampled_remote_context();
        let stamped = Metadata::from_lineage(*b"0190c3a5-7e1f-7c3b-9d2a-5b6c7d8e9f00");
        let mut each = vec![stamped.clone(), stamped.clone(), stamped];
        inject_each(&cx, each.iter_mut());
        let mut one = Metadata::from_lineage(*b"0190c3a5-7e1f-7c3b-9d2a-5b6c7d8e9f00");
        inject(&cx, &mut one);
        assert!(each.iter().all(|metadata| *metadata == one), "{each:?}");
        assert_eq!(each[2].stored_json(), one.stored_json());
        assert!(
            each[0].is_same(&each[1]) && each[1].is_same(&each[2]),
            "one text, shared"
        );
        assert_eq!(
            one.correlation_id(),
            Some("0190c3a5-7e1f-7c3b-9d2a-5b6c7d8e9f00")
        );
    }
}
