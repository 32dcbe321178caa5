//! Which attributes a span's line shows, and how a value is written: all of them in the
//! full view, the few that tell the story in the compact one.

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use super::{MAX_ARRAY_ITEMS, MAX_VALUE_CHARS, STORY_ATTRIBUTES};
use crate::telemetry::attributes as key;

/// The attributes that tell a span's story, most telling first: the compact view shows the
/// first [`STORY_ATTRIBUTES`] a span has (after the ones its parent or its name already
/// say), then the application's own.
const STORY: [&str; 18] = [
    key::AGGREGATE_ID,
    // Shown where a request's spans begin (below, every span repeats it): a command, a
    // service's consumed message.
    key::CORRELATION_ID,
    key::HANDLER_NAME,
    key::PROJECTION_NAME,
    key::EVENT_TYPE,
    key::DELIVERY_MODE,
    key::DELIVERY_ATTEMPT,
    key::COMMAND_DUPLICATE,
    key::HANDLER_DUPLICATE,
    key::EVENT_COUNT,
    key::EVENTS_REPLAYED,
    key::UPCAST_COUNT,
    key::EVENTS_LOADED,
    key::QUERY_RESULT_COUNT,
    key::VERSION,
    key::EXPECTED_VERSION,
    key::MESSAGING_DESTINATION_NAME,
    key::MESSAGING_BATCH_MESSAGE_COUNT,
];

/// Namespaces of the library's and the conventions' keys: any other key is the
/// application's own.
const LIBRARY_NAMESPACES: [&str; 11] = [
    "eventsource.",
    "db.",
    "messaging.",
    "cqrs.",
    "server.",
    "network.",
    "error.",
    "code.",
    "thread.",
    "exception.",
    "otel.",
];

/// Keys never shown: tracing-opentelemetry's bookkeeping, and what other lines show.
fn hidden(key: &str) -> bool {
    const PREFIXES: [&str; 4] = ["code.", "thread.", "exception.", "otel."];
    const KEYS: [&str; 5] = ["target", "busy_ns", "idle_ns", "cqrs.side", "error.chain"];
    PREFIXES.iter().any(|p| key.starts_with(p)) || KEYS.contains(&key)
}

/// `key=value` of every attribute worth a glance, with its full key (what
/// `testing::attribute` and a backend's query take): the full view.
pub(super) fn all(span: &SpanData, parent: Option<&SpanData>) -> Vec<String> {
    shown(span, parent).map(written).collect()
}

/// `key=value` of the few attributes that tell the span's story: the compact view. A flag
/// (`eventsource.command.duplicate`, ...) is shown only when it is set.
pub(super) fn story(span: &SpanData, parent: Option<&SpanData>) -> Vec<String> {
    let candidates: Vec<&KeyValue> = shown(span, parent)
        .filter(|kv| kv.value != Value::Bool(false))
        .collect();
    let library = STORY
        .iter()
        .filter_map(|k| candidates.iter().find(|kv| kv.key.as_str() == *k));
    let own = candidates.iter().filter(|kv| {
        !LIBRARY_NAMESPACES
            .iter()
            .any(|n| kv.key.as_str().starts_with(n))
    });
    library
        .chain(own)
        .take(STORY_ATTRIBUTES)
        .map(|kv| written(kv))
        .collect()
}

/// The span's attributes less what the line shows elsewhere or the reader already knows.
fn shown<'a>(
    span: &'a SpanData,
    parent: Option<&'a SpanData>,
) -> impl Iterator<Item = &'a KeyValue> {
    span.attributes.iter().filter(move |kv| {
        let key = kv.key.as_str();
        // The parent already says it (the aggregate id on every repository/store span).
        let said_by_parent = parent.is_some_and(|p| p.attributes.iter().any(|pkv| pkv == *kv));
        // The name already says it (`command.type` on `command.PlaceOrder`).
        let said_by_name = key.starts_with("eventsource.")
            && matches!(&kv.value, Value::String(s)
                if span.name.split('.').any(|segment| segment == s.as_str()));
        !hidden(key) && !said_by_parent && !said_by_name
    })
}

fn written(kv: &KeyValue) -> String {
    format!("{}={}", kv.key.as_str(), value(&kv.value))
}

fn value(value: &Value) -> String {
    match value {
        Value::String(s) => text(s.as_str()),
        Value::Array(Array::String(items)) => list(items.iter().map(|s| text(s.as_str()))),
        Value::Array(Array::I64(items)) => list(items.iter().map(i64::to_string)),
        Value::Array(Array::F64(items)) => list(items.iter().map(f64::to_string)),
        Value::Array(Array::Bool(items)) => list(items.iter().map(bool::to_string)),
        other => text(&other.to_string()),
    }
}

fn list(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut shown: Vec<String> = items.take(MAX_ARRAY_ITEMS).collect();
    if total > MAX_ARRAY_ITEMS {
        shown.push(format!("…+{}", total - MAX_ARRAY_ITEMS));
    }
    format!("[{}]", shown.join(", "))
}

/// A string value, cut to [`MAX_VALUE_CHARS`] and quoted when it would not read as one token.
fn text(s: &str) -> String {
    let cut: String = if s.chars().count() > MAX_VALUE_CHARS {
        s.chars()
            .take(MAX_VALUE_CHARS - 1)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        s.to_owned()
    };
    if cut.is_empty() || cut.contains(|c: char| c.is_whitespace() || matches!(c, '=' | '"' | ',')) {
        format!("{cut:?}")
    } else {
        cut
    }
}
