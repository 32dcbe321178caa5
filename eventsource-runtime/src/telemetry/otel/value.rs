//! The runtime's attribute values ([`Attr`]) as OpenTelemetry's: what spans, links and
//! metrics record. A leaf: it imports no other recorder module.

use opentelemetry::{Array, KeyValue, Value};

use crate::telemetry::values::Attr;

/// An attribute value as OpenTelemetry's. Always inlined: where a span or metric is
/// gathered the variant is known, and the match and the moves through it fold away (left
/// to the compiler, it was often called, at about 40 instructions a value).
#[inline(always)]
pub(crate) fn otel_value(value: Attr<'_>) -> Value {
    match value {
        Attr::Str(s) => Value::String(s.to_owned().into()),
        Attr::Static(s) => Value::from(s),
        Attr::Shared(s) => Value::from(std::sync::Arc::clone(s)),
        Attr::Int(n) => Value::I64(n),
        Attr::Bool(b) => Value::Bool(b),
        Attr::Ints(items) => Value::Array(Array::I64(items.to_vec())),
        Attr::Display(d) => Value::String(d.to_string().into()),
    }
}

/// Attributes as OpenTelemetry's.
pub(crate) fn key_values(attributes: &[(&'static str, Attr<'_>)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|&(key, value)| KeyValue::new(key, otel_value(value)))
        .collect()
}
